//! The binned training matrix and deterministic parallel histogram building.
//!
//! Bins are stored row-major (`n_rows x n_features`), one byte per value when every feature's
//! bins plus its missing slot fit in `u8`. Work is split into fixed-size row blocks whatever the
//! thread count, and per-block histograms are summed in block order, so results do not depend on
//! how many threads ran.

use rayon::prelude::*;

use crate::binning::Cuts;
use crate::data::DMatrix;
use crate::split::Stat;

/// Rows per histogram or partition task. Fixed so floating-point sums are thread-count free.
pub(crate) const BLOCK_ROWS: usize = 16_384;

/// A gradient pair, `f32` as XGBoost's `GradientPair`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct GradPair {
    pub g: f32,
    pub h: f32,
}

/// A bin index type.
pub(crate) trait BinIdx: Copy + Default + Send + Sync + 'static {
    fn idx(self) -> usize;
    fn from_usize(v: usize) -> Self;
}

impl BinIdx for u8 {
    fn idx(self) -> usize {
        usize::from(self)
    }
    fn from_usize(v: usize) -> Self {
        u8::try_from(v).unwrap_or(u8::MAX)
    }
}

impl BinIdx for u16 {
    fn idx(self) -> usize {
        usize::from(self)
    }
    fn from_usize(v: usize) -> Self {
        u16::try_from(v).unwrap_or(u16::MAX)
    }
}

/// Feature layout of a histogram: feature `f` owns slots `offsets[f] .. offsets[f] + n_bins[f]
/// + 1`, the last one for missing values.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub n_bins: Vec<usize>,
    pub offsets: Vec<usize>,
    pub n_slots: usize,
}

impl Layout {
    fn new(cuts: &Cuts) -> Self {
        let n_bins: Vec<usize> = (0..cuts.n_features())
            .map(|f| cuts.feature(f).len())
            .collect();
        let mut offsets = Vec::with_capacity(n_bins.len());
        let mut n_slots = 0usize;
        for b in &n_bins {
            offsets.push(n_slots);
            n_slots = n_slots.saturating_add(b.saturating_add(1));
        }
        Self {
            n_bins,
            offsets,
            n_slots,
        }
    }

    /// The slots of feature `f`.
    pub fn feature<'a>(&self, hist: &'a [Stat], f: usize) -> &'a [Stat] {
        match (self.offsets.get(f), self.n_bins.get(f)) {
            (Some(&o), Some(&n)) => hist
                .get(o..o.saturating_add(n).saturating_add(1))
                .unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// The binned matrix: `bins[row * n_features + f]` is the bin of the value, `n_bins[f]` when
/// missing.
#[derive(Debug)]
pub(crate) struct BinMatrix<B> {
    pub bins: Vec<B>,
    /// The same bins column-major (`cols[f * n_rows + row]`): partitioning reads one feature of
    /// many rows, which is a sequential scan here and a strided one in `bins`.
    pub cols: Vec<B>,
    pub n_rows: usize,
    pub n_features: usize,
    pub layout: Layout,
}

/// Either width of [`BinMatrix`].
#[derive(Debug)]
pub(crate) enum AnyBins {
    U8(BinMatrix<u8>),
    U16(BinMatrix<u16>),
}

impl AnyBins {
    pub fn build(m: &DMatrix, cuts: &Cuts) -> Self {
        let layout = Layout::new(cuts);
        // Each feature needs its bins plus a missing slot.
        if layout.n_bins.iter().all(|b| *b < 256) {
            Self::U8(bin_matrix(m, cuts, layout))
        } else {
            Self::U16(bin_matrix(m, cuts, layout))
        }
    }
}

fn bin_matrix<B: BinIdx + Default>(m: &DMatrix, cuts: &Cuts, layout: Layout) -> BinMatrix<B> {
    let nf = m.n_cols();
    let mut bins = vec![B::default(); m.n_rows().saturating_mul(nf)];
    if nf > 0 {
        bins.par_chunks_mut(nf.saturating_mul(BLOCK_ROWS))
            .enumerate()
            .for_each(|(block, out)| {
                let mut buf = Vec::new();
                let first = block.saturating_mul(BLOCK_ROWS);
                for (i, row_out) in out.chunks_mut(nf).enumerate() {
                    let row = m.row(first.saturating_add(i), &mut buf);
                    for (f, (o, v)) in row_out.iter_mut().zip(row).enumerate() {
                        let b = if v.is_nan() {
                            layout.n_bins.get(f).copied().unwrap_or(0)
                        } else {
                            cuts.search_bin(f, *v)
                        };
                        *o = B::from_usize(b);
                    }
                }
            });
    }
    let n_rows = m.n_rows();
    let mut cols = vec![B::default(); bins.len()];
    if n_rows > 0 {
        cols.par_chunks_mut(n_rows)
            .enumerate()
            .for_each(|(f, col)| {
                for (dst, src) in col.iter_mut().zip(bins.iter().skip(f).step_by(nf.max(1))) {
                    *dst = *src;
                }
            });
    }
    BinMatrix {
        bins,
        cols,
        n_rows,
        n_features: nf,
        layout,
    }
}

impl<B: BinIdx> BinMatrix<B> {
    /// Bins of feature `f` for every row.
    pub fn column(&self, f: usize) -> &[B] {
        let start = f.saturating_mul(self.n_rows);
        self.cols
            .get(start..start.saturating_add(self.n_rows))
            .unwrap_or(&[])
    }
}

/// Rows touched ahead at a time: their bins and gradients (a few KiB) then sit in L1 while the
/// histogram is updated.
const TOUCH_ROWS: usize = 128;

/// Adds the gradients of `rows` into `hist`.
///
/// Below the root a node's rows are scattered over the matrix, and a loop that updates the
/// histogram straight from them waits on one cache miss per row. Loading one byte of each row of
/// a small batch first is a tight loop whose misses overlap; the updates then run from L1.
fn accumulate<B: BinIdx, const COUNT: bool>(
    m: &BinMatrix<B>,
    gpairs: &[GradPair],
    rows: &[u32],
    hist: &mut [Stat],
) {
    for batch in rows.chunks(TOUCH_ROWS) {
        let (Some(&first), Some(&last)) = (batch.first(), batch.last()) else {
            continue;
        };
        let dense = (last as usize).saturating_sub(first as usize) < batch.len().saturating_mul(2);
        if !dense {
            std::hint::black_box(touch(m, gpairs, batch));
        }
        update::<B, COUNT>(m, gpairs, batch, hist);
    }
}

/// Loads the first and last bin and the gradient of every row, so their cache lines arrive
/// together.
// Hot loop: rows come from the partitioner (all < n_rows), so every index is in range.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
fn touch<B: BinIdx>(m: &BinMatrix<B>, gpairs: &[GradPair], batch: &[u32]) -> u32 {
    let nf = m.n_features;
    let mut acc = 0u32;
    for r in batch {
        let r = *r as usize;
        let a = m.bins[r * nf].idx() ^ m.bins[r * nf + nf - 1].idx();
        acc = acc.wrapping_add(a as u32) ^ gpairs[r].g.to_bits();
    }
    acc
}

/// Adds the rows' gradients into `hist`.
// Hot loop: rows come from the partitioner (all < n_rows) and bins are < n_bins[f] + 1 by
// construction, so `offsets[f] + bin` is a slot of `hist`; checked indexing costs a third of
// training time here.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
/// With `COUNT`, also counts rows per slot (only a row floor, `min_leaf_rows`, needs them).
fn update<B: BinIdx, const COUNT: bool>(
    m: &BinMatrix<B>,
    gpairs: &[GradPair],
    rows: &[u32],
    hist: &mut [Stat],
) {
    let nf = m.n_features;
    let offsets = &m.layout.offsets[..nf];
    for &r in rows {
        let r = r as usize;
        let gp = gpairs[r];
        let (g, h) = (f64::from(gp.g), f64::from(gp.h));
        for (b, off) in m.bins[r * nf..r * nf + nf].iter().zip(offsets) {
            let s = &mut hist[off + b.idx()];
            s.g += g;
            s.h += h;
            if COUNT {
                s.n += 1.0;
            }
        }
    }
}

/// Histograms of several row sets at once (one per node), built over fixed row blocks in
/// parallel and summed block by block in order.
pub(crate) fn build_histograms<B: BinIdx>(
    m: &BinMatrix<B>,
    gpairs: &[GradPair],
    row_sets: &[&[u32]],
    count_rows: bool,
) -> Vec<Vec<Stat>> {
    let n_slots = m.layout.n_slots;
    let tasks: Vec<(usize, &[u32])> = row_sets
        .iter()
        .enumerate()
        .flat_map(|(i, rows)| rows.chunks(BLOCK_ROWS).map(move |c| (i, c)))
        .collect();
    let partials: Vec<(usize, Vec<Stat>)> = tasks
        .par_iter()
        .map(|(i, rows)| {
            let mut h = vec![Stat::default(); n_slots];
            if count_rows {
                accumulate::<B, true>(m, gpairs, rows, &mut h);
            } else {
                accumulate::<B, false>(m, gpairs, rows, &mut h);
            }
            (*i, h)
        })
        .collect();
    let mut out: Vec<Vec<Stat>> = (0..row_sets.len())
        .map(|_| vec![Stat::default(); n_slots])
        .collect();
    // Per node, blocks are summed in their order; nodes in parallel.
    let mut by_node: Vec<Vec<Vec<Stat>>> = (0..row_sets.len()).map(|_| Vec::new()).collect();
    for (i, h) in partials {
        if let Some(v) = by_node.get_mut(i) {
            v.push(h);
        }
    }
    out.par_iter_mut().zip(by_node).for_each(|(dst, parts)| {
        let mut parts = parts.into_iter();
        if let Some(first) = parts.next() {
            *dst = first;
        }
        for p in parts {
            for (d, s) in dst.iter_mut().zip(&p) {
                d.add(*s);
            }
        }
    });
    out
}

/// `parent - child`, slot by slot: the sibling's histogram without touching its rows.
pub(crate) fn subtract(parent: &[Stat], child: &[Stat]) -> Vec<Stat> {
    parent.iter().zip(child).map(|(p, c)| p.sub(*c)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn histogram_sums_match_direct_sums_and_missing_slot() {
        let vals = vec![1.0, f32::NAN, 2.0, 5.0, 1.0, 5.0, f32::NAN, 5.0];
        let m = DMatrix::from_row_major(vals, 4, 2).unwrap();
        let cuts = Cuts::build(&m, 256).unwrap();
        let AnyBins::U8(bm) = AnyBins::build(&m, &cuts) else {
            panic!("expected u8 bins")
        };
        let gp: Vec<GradPair> = (0..4)
            .map(|i| GradPair {
                g: i as f32,
                h: 1.0,
            })
            .collect();
        let rows: Vec<u32> = vec![0, 1, 2, 3];
        let h = build_histograms(&bm, &gp, &[&rows], true).remove(0);
        // Feature 0 has values {1, 2} -> 2 bins + missing.
        let f0 = bm.layout.feature(&h, 0);
        assert_eq!(f0.len(), 3);
        assert_eq!(
            f0[0],
            Stat {
                g: 0.0 + 2.0,
                h: 2.0,
                n: 2.0
            }
        );
        assert_eq!(
            f0[1],
            Stat {
                g: 1.0,
                h: 1.0,
                n: 1.0
            }
        );
        assert_eq!(
            f0[2],
            Stat {
                g: 3.0,
                h: 1.0,
                n: 1.0
            }
        );
        // Feature 1: one distinct value (5) in rows 1..=3, row 0 missing.
        let f1 = bm.layout.feature(&h, 1);
        assert_eq!(
            f1,
            &[
                Stat {
                    g: 6.0,
                    h: 3.0,
                    n: 3.0
                },
                Stat {
                    g: 0.0,
                    h: 1.0,
                    n: 1.0
                }
            ]
        );
        let sub = subtract(&h, &h);
        assert!(sub.iter().all(|s| s.g == 0.0 && s.h == 0.0));
    }
}
