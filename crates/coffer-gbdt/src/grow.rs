//! Depthwise tree growth over histograms, as XGBoost's `hist` updater: a level at a time, the
//! smaller child's histogram built from its rows and the larger one's by subtraction from the
//! parent, rows partitioned in place (stably, so sums stay in a fixed order).

use rayon::prelude::*;

use crate::binning::Cuts;
use crate::hist::{BLOCK_ROWS, BinIdx, BinMatrix, GradPair, build_histograms, subtract};
use crate::split::{
    Candidate, FeatureHist, RT_EPS, SplitParams, Stat, calc_gain, calc_weight, evaluate_feature,
};
use crate::tree::{Expansion, Tree};

/// Per-tree growth settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrowParams {
    pub split: SplitParams,
    pub eta: f32,
    pub gamma: f32,
    pub max_depth: u32,
}

/// A node of the current level: its rows are `positions[start..end]`.
struct Open {
    nid: usize,
    start: usize,
    end: usize,
    sum: Stat,
    depth: u32,
    hist: Vec<Stat>,
}

/// A grown tree and, for every leaf, the rows (a range of the returned positions) it holds.
pub(crate) struct Grown {
    pub tree: Tree,
    pub positions: Vec<u32>,
    pub leaves: Vec<(usize, usize, usize)>,
}

/// Grows one tree on the rows in `positions` (ascending), considering only features with
/// `feature_mask[f]`.
pub(crate) fn grow<B: BinIdx + Default>(
    m: &BinMatrix<B>,
    cuts: &Cuts,
    gpairs: &[GradPair],
    mut positions: Vec<u32>,
    feature_mask: &[bool],
    p: &GrowParams,
) -> Grown {
    let root_sum = sum_rows(gpairs, &positions);
    let root_weight = calc_weight(&p.split, root_sum) as f32;
    let mut tree = Tree::single_leaf(p.eta * root_weight, root_sum.h as f32);
    let mut leaves = Vec::new();
    let root_hist = build_histograms(m, gpairs, &[&positions], p.split.min_rows > 0.0)
        .pop()
        .unwrap_or_default();
    let mut level = vec![Open {
        nid: 0,
        start: 0,
        end: positions.len(),
        sum: root_sum,
        depth: 0,
        hist: root_hist,
    }];
    while !level.is_empty() {
        let best: Vec<Candidate> = level
            .par_iter()
            .map(|n| best_split(m, cuts, feature_mask, &p.split, n))
            .collect();
        let mut splits: Vec<(Open, Candidate)> = Vec::new();
        for (node, cand) in level.into_iter().zip(best) {
            if is_valid(p, &cand, node.depth) {
                splits.push((node, cand));
            } else {
                leaves.push((node.nid, node.start, node.end));
            }
        }
        let n_left = partition(m, &mut positions, &splits);
        let mut out = Output {
            tree: &mut tree,
            leaves: &mut leaves,
        };
        level = next_level(m, gpairs, &positions, &mut out, splits, &n_left, p);
    }
    Grown {
        tree,
        positions,
        leaves,
    }
}

/// XGBoost's `ExpandEntry::IsValid`.
fn is_valid(p: &GrowParams, c: &Candidate, depth: u32) -> bool {
    c.loss_chg > RT_EPS
        && c.left.h != 0.0
        && c.right.h != 0.0
        && c.loss_chg >= p.gamma
        && depth < p.max_depth
}

fn best_split<B>(
    m: &BinMatrix<B>,
    cuts: &Cuts,
    feature_mask: &[bool],
    sp: &SplitParams,
    node: &Open,
) -> Candidate {
    let parent_gain = calc_gain(sp, node.sum);
    let mut best = Candidate::none();
    for (f, _) in feature_mask.iter().enumerate().filter(|(_, on)| **on) {
        let hist = m.layout.feature(&node.hist, f);
        let fh = FeatureHist {
            feature: f,
            hist,
            cuts: cuts.feature(f),
            min_value: cuts.min_value(f),
        };
        evaluate_feature(sp, fh, node.sum, parent_gain, &mut best);
    }
    best
}

/// Sum of the gradients of `rows`, block by block in order.
pub(crate) fn sum_rows(gpairs: &[GradPair], rows: &[u32]) -> Stat {
    let parts: Vec<Stat> = rows
        .par_chunks(BLOCK_ROWS)
        .map(|c| {
            let mut s = Stat::default();
            for r in c {
                if let Some(gp) = gpairs.get(*r as usize) {
                    s.add(Stat {
                        g: f64::from(gp.g),
                        h: f64::from(gp.h),
                        n: 1.0,
                    });
                }
            }
            s
        })
        .collect();
    let mut total = Stat::default();
    for s in parts {
        total.add(s);
    }
    total
}

/// Stable in-place partition of every split node's rows, left rows first; returns how many rows
/// went left in each.
fn partition<B: BinIdx>(
    m: &BinMatrix<B>,
    positions: &mut [u32],
    splits: &[(Open, Candidate)],
) -> Vec<usize> {
    // Carve disjoint mutable slices for the split nodes (ranges are disjoint, sorted by start).
    let mut slices: Vec<(&mut [u32], &Candidate)> = Vec::with_capacity(splits.len());
    let mut rest: &mut [u32] = positions;
    let mut consumed = 0usize;
    for (node, cand) in splits {
        let skip = node.start.saturating_sub(consumed);
        let len = node.end.saturating_sub(node.start);
        let tail = std::mem::take(&mut rest);
        let (_, tail) = tail.split_at_mut(skip.min(tail.len()));
        let (mine, tail) = tail.split_at_mut(len.min(tail.len()));
        slices.push((mine, cand));
        rest = tail;
        consumed = node.end;
    }
    slices
        .par_iter_mut()
        .map(|(rows, cand)| {
            let col = m.column(cand.feature);
            let table = left_table(m, cand);
            let goes_left = |r: u32| {
                let b = col.get(r as usize).map_or(0, |b| b.idx());
                table.get(b).copied().unwrap_or(false)
            };
            // Blocks partition independently; concatenating their halves in order is a stable
            // partition of the whole node.
            let halves: Vec<(Vec<u32>, Vec<u32>)> = rows
                .par_chunks(BLOCK_ROWS.saturating_mul(4))
                .map(|c| split_block(c, &goes_left))
                .collect();
            let mut out = rows.iter_mut();
            for v in halves
                .iter()
                .map(|h| &h.0)
                .chain(halves.iter().map(|h| &h.1))
            {
                // `v` drives the zip so that its end does not swallow a slot of `out`.
                for (src, dst) in v.iter().zip(out.by_ref()) {
                    *dst = *src;
                }
            }
            halves.iter().map(|h| h.0.len()).sum()
        })
        .collect()
}

/// Splits a block of rows into (left, right), keeping their order.
// Branch-free: the side a row takes is data-dependent and would mispredict. Each row is written
// to both buffers and only the chosen side's cursor advances; cursors never pass `rows.len()`.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
fn split_block(rows: &[u32], goes_left: &impl Fn(u32) -> bool) -> (Vec<u32>, Vec<u32>) {
    let n = rows.len();
    let (mut left, mut right) = (
        vec![0u32; n.saturating_add(1)],
        vec![0u32; n.saturating_add(1)],
    );
    let (mut nl, mut nr) = (0usize, 0usize);
    for &r in rows {
        let l = usize::from(goes_left(r));
        left[nl] = r;
        right[nr] = r;
        nl += l;
        nr += 1 - l;
    }
    left.truncate(nl);
    right.truncate(nr);
    (left, right)
}

/// For every bin of the split feature (the missing slot last), whether it goes left.
fn left_table<B: BinIdx>(m: &BinMatrix<B>, c: &Candidate) -> Vec<bool> {
    let n_bins = m.layout.n_bins.get(c.feature).copied().unwrap_or(0);
    (0..=n_bins)
        .map(|b| {
            if b == n_bins {
                c.default_left
            } else {
                (b as i64) <= c.left_max_bin
            }
        })
        .collect()
}

/// The tree being grown and its finished leaves (node id, row range).
struct Output<'a> {
    tree: &'a mut Tree,
    leaves: &'a mut Vec<(usize, usize, usize)>,
}

/// Expands the tree for every split and builds the children's histograms.
fn next_level<B: BinIdx + Default>(
    m: &BinMatrix<B>,
    gpairs: &[GradPair],
    positions: &[u32],
    out: &mut Output<'_>,
    splits: Vec<(Open, Candidate)>,
    n_left: &[usize],
    p: &GrowParams,
) -> Vec<Open> {
    let mut pairs: Vec<(Open, Open)> = Vec::with_capacity(splits.len());
    for ((node, c), n_left) in splits.into_iter().zip(n_left) {
        let weight = |s: Stat| p.eta * calc_weight(&p.split, s) as f32;
        let e = Expansion {
            feature: u32::try_from(c.feature).unwrap_or(u32::MAX),
            cond: c.cond,
            default_left: c.default_left,
            base_weight: calc_weight(&p.split, node.sum) as f32,
            loss_change: c.loss_chg,
            left_value: weight(c.left),
            right_value: weight(c.right),
            left_hess: c.left.h as f32,
            right_hess: c.right.h as f32,
        };
        let Some((l, r)) = out.tree.expand(node.nid, e) else {
            out.leaves.push((node.nid, node.start, node.end));
            continue;
        };
        let mid = node.start.saturating_add(*n_left);
        let depth = node.depth.saturating_add(1);
        let child = |nid, start, end, sum| Open {
            nid,
            start,
            end,
            sum,
            depth,
            hist: Vec::new(),
        };
        pairs.push((
            child(l, node.start, mid, c.left),
            child(r, mid, node.end, c.right),
        ));
        // Keep the parent histogram alongside for the subtraction below.
        if let Some(last) = pairs.last_mut() {
            last.0.hist = node.hist;
        }
    }
    let smaller: Vec<&[u32]> = pairs
        .iter()
        .map(|(a, b)| {
            let (s, e) = if len(a) <= len(b) {
                (a.start, a.end)
            } else {
                (b.start, b.end)
            };
            positions.get(s..e).unwrap_or(&[])
        })
        .collect();
    let built = build_histograms(m, gpairs, &smaller, p.split.min_rows > 0.0);
    let mut level = Vec::with_capacity(pairs.len().saturating_mul(2));
    for ((mut a, mut b), small) in pairs.into_iter().zip(built) {
        let parent = std::mem::take(&mut a.hist);
        let big = subtract(&parent, &small);
        if len(&a) <= len(&b) {
            a.hist = small;
            b.hist = big;
        } else {
            a.hist = big;
            b.hist = small;
        }
        level.push(a);
        level.push(b);
    }
    level
}

fn len(o: &Open) -> usize {
    o.end.saturating_sub(o.start)
}
