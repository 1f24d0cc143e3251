//! Compact copies of the trees for prediction, traversed a block of rows per tree so each tree
//! stays in L1 while the block runs through it. The rows of a block step down the tree in
//! lockstep, one level at a time, so their independent node loads overlap instead of forming
//! one chain of dependent loads per row, and each step is branch-free.
//!
//! Trees up to [`MAX_PERFECT_DEPTH`] deep are stored as perfect binary trees (node `p` has
//! children `2p + 1` and `2p + 2`; a leaf above the last level is padded with nodes that always
//! go left), so a step needs no child pointers. Deeper trees keep explicit child indices.

use crate::tree::{Node, Tree};

const DEFAULT_LEFT: u32 = 1 << 31;
const FEATURE_MASK: u32 = DEFAULT_LEFT - 1;
/// Deeper trees would make the padded arrays large (2^depth nodes).
const MAX_PERFECT_DEPTH: usize = 12;

/// A split of a perfect tree: feature plus the `DEFAULT_LEFT` flag, and the threshold.
#[derive(Debug, Clone, Copy)]
struct Split {
    meta: u32,
    cond: f32,
}

/// A node of a linked tree; a leaf points to itself both ways, so stepping from it stays put.
#[derive(Debug, Clone, Copy)]
struct Linked {
    meta: u32,
    cond: f32,
    left: u32,
    right: u32,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `2^depth - 1` splits at `splits[first..]`, `2^depth` leaves at `leaves[first_leaf..]`.
    Perfect { first: usize, first_leaf: usize },
    /// Nodes at `linked[root..]`, indices absolute.
    Linked { root: u32 },
}

#[derive(Debug, Clone, Copy)]
struct TreeRef {
    kind: Kind,
    depth: usize,
    group: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Forest {
    splits: Vec<Split>,
    leaves: Vec<f32>,
    linked: Vec<Linked>,
    trees: Vec<TreeRef>,
}

/// Whether `x` goes left at a node: below the threshold, or missing with a left default.
fn goes_left(x: f32, meta: u32, cond: f32) -> u32 {
    u32::from(x < cond) | (u32::from(x.is_nan()) & (meta >> 31))
}

impl Forest {
    /// Flattens `trees` (checked trees: acyclic, children in range). A tree that cannot be
    /// flattened (over 2^31 nodes in all) is left out, which no model that fits in memory hits.
    pub fn new<'a>(trees: impl Iterator<Item = (&'a Tree, usize)>) -> Self {
        let mut f = Self::default();
        for (tree, group) in trees {
            let depth = depth(tree);
            // Padding is bounded by the tree's own size, so a hostile model of sparse deep
            // trees cannot make the padded arrays much larger than its JSON.
            let compact =
                (1usize << depth.min(MAX_PERFECT_DEPTH)) <= tree.nodes().len().saturating_mul(4);
            let kind = if depth <= MAX_PERFECT_DEPTH && compact {
                Some(f.add_perfect(tree, depth))
            } else {
                f.add_linked(tree)
            };
            if let Some(kind) = kind {
                f.trees.push(TreeRef { kind, depth, group });
            }
        }
        f
    }

    fn add_perfect(&mut self, tree: &Tree, depth: usize) -> Kind {
        let (first, first_leaf) = (self.splits.len(), self.leaves.len());
        let n_leaves = 1usize << depth;
        let pad = Split {
            meta: DEFAULT_LEFT,
            cond: f32::INFINITY,
        };
        self.splits
            .resize(first.saturating_add(n_leaves.saturating_sub(1)), pad);
        self.leaves.resize(first_leaf.saturating_add(n_leaves), 0.0);
        let nodes = tree.nodes();
        // (tree node, perfect position, level); a leaf above the last level fills its whole
        // subtree, whose padding splits always go left.
        let mut stack = vec![(0usize, 0usize, 0usize)];
        while let Some((i, p, level)) = stack.pop() {
            let Some(n) = nodes.get(i) else { continue };
            if level == depth {
                let slot = p.saturating_sub(n_leaves.saturating_sub(1));
                if let Some(l) = self.leaves.get_mut(first_leaf.saturating_add(slot)) {
                    *l = n.cond;
                }
                continue;
            }
            let (left, right) = if n.is_leaf() {
                (i, i)
            } else {
                if let Some(s) = self.splits.get_mut(first.saturating_add(p)) {
                    *s = Split {
                        meta: meta(n),
                        cond: n.cond,
                    };
                }
                (
                    usize::try_from(n.left).unwrap_or(0),
                    usize::try_from(n.right).unwrap_or(0),
                )
            };
            let child = p.saturating_mul(2).saturating_add(1);
            let next = level.saturating_add(1);
            stack.push((left, child, next));
            stack.push((right, child.saturating_add(1), next));
        }
        Kind::Perfect { first, first_leaf }
    }

    fn add_linked(&mut self, tree: &Tree) -> Option<Kind> {
        let base = self.linked.len();
        let abs = |c: usize| c.checked_add(base).and_then(|c| u32::try_from(c).ok());
        let flat: Option<Vec<Linked>> = tree
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let me = abs(i)?;
                if n.is_leaf() {
                    return Some(Linked {
                        meta: 0,
                        cond: n.cond,
                        left: me,
                        right: me,
                    });
                }
                Some(Linked {
                    meta: meta(n),
                    cond: n.cond,
                    left: abs(usize::try_from(n.left).ok()?)?,
                    right: abs(usize::try_from(n.right).ok()?)?,
                })
            })
            .collect();
        let root = abs(0)?;
        self.linked.extend(flat?);
        Some(Kind::Linked { root })
    }

    /// Adds every tree's leaf value to `out` (`k` outputs per row) for a block of rows given
    /// row-major in `block` (`nf` values per row).
    pub fn predict_block(&self, block: &[f32], nf: usize, k: usize, out: &mut [f32]) {
        let n_rows = block.len().checked_div(nf).unwrap_or(0);
        let mut pos = vec![0u32; n_rows];
        for t in &self.trees {
            let values: &mut dyn Iterator<Item = f32> = match t.kind {
                Kind::Perfect { first, first_leaf } => {
                    pos.fill(0);
                    let splits = self.splits.get(first..).unwrap_or(&[]);
                    for _ in 0..t.depth {
                        step_perfect(splits, &mut pos, block, nf);
                    }
                    let leaves = self.leaves.get(first_leaf..).unwrap_or(&[]);
                    let offset = (1usize << t.depth).saturating_sub(1);
                    &mut pos.iter().map(move |p| {
                        let slot = (*p as usize).saturating_sub(offset);
                        leaves.get(slot).copied().unwrap_or(0.0)
                    })
                }
                Kind::Linked { root } => {
                    pos.fill(root);
                    for _ in 0..t.depth {
                        self.step_linked(&mut pos, block, nf);
                    }
                    &mut pos
                        .iter()
                        .map(|p| self.linked.get(*p as usize).map_or(0.0, |n| n.cond))
                }
            };
            for (v, o) in values.zip(out.chunks_mut(k.max(1))) {
                if let Some(o) = o.get_mut(t.group) {
                    *o += v;
                }
            }
        }
    }

    /// Moves every row one level down a linked tree (leaves stay put).
    // Offsets are bounded by `block.len()`; every index is read through `get`.
    #[allow(clippy::arithmetic_side_effects)]
    fn step_linked(&self, pos: &mut [u32], block: &[f32], nf: usize) {
        let mut base = 0usize;
        for p in pos.iter_mut() {
            if let Some(n) = self.linked.get(*p as usize) {
                let f = (n.meta & FEATURE_MASK) as usize;
                let x = block.get(base + f).copied().unwrap_or(f32::NAN);
                let mask = goes_left(x, n.meta, n.cond).wrapping_neg();
                *p = n.right ^ ((n.left ^ n.right) & mask);
            }
            base += nf;
        }
    }
}

/// Moves every row one level down a perfect tree: `p -> 2p + 1` (left) or `2p + 2` (right).
// Positions stay below 2^MAX_PERFECT_DEPTH and offsets below `block.len()`; every index is read
// through `get`.
#[allow(clippy::arithmetic_side_effects)]
fn step_perfect(splits: &[Split], pos: &mut [u32], block: &[f32], nf: usize) {
    let mut base = 0usize;
    for p in pos.iter_mut() {
        if let Some(s) = splits.get(*p as usize) {
            let x = block
                .get(base + (s.meta & FEATURE_MASK) as usize)
                .copied()
                .unwrap_or(f32::NAN);
            *p = 2 * *p + 2 - goes_left(x, s.meta, s.cond);
        }
        base += nf;
    }
}

fn meta(n: &Node) -> u32 {
    (n.feature & FEATURE_MASK) | if n.default_left { DEFAULT_LEFT } else { 0 }
}

/// Longest root-to-leaf path, in edges (iterative: depth is attacker-controlled).
fn depth(tree: &Tree) -> usize {
    let nodes = tree.nodes();
    let mut best = 0usize;
    let mut stack = vec![(0usize, 0usize)];
    // Checked trees reach each node once, so the stack sees each node at most once.
    while let Some((i, d)) = stack.pop() {
        best = best.max(d);
        if let Some(n) = nodes.get(i).filter(|n| !n.is_leaf()) {
            for c in [n.left, n.right] {
                if let Ok(c) = usize::try_from(c) {
                    stack.push((c, d.saturating_add(1)));
                }
            }
        }
        if stack.len() > nodes.len() {
            break;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )]
    use super::*;
    use crate::tree::Expansion;

    /// A chain (each split's right child split again) of `depth` splits on alternating features.
    fn chain(depth: usize) -> Tree {
        let mut t = Tree::single_leaf(0.0, 1.0);
        let mut at = 0;
        for d in 0..depth {
            let e = Expansion {
                feature: (d % 3) as u32,
                cond: d as f32 * 0.1 - 0.5,
                default_left: d % 2 == 0,
                base_weight: 0.0,
                loss_change: 1.0,
                left_value: d as f32,
                right_value: -(d as f32) - 1.0,
                left_hess: 1.0,
                right_hess: 1.0,
            };
            at = t.expand(at, e).unwrap().1;
        }
        t
    }

    #[test]
    fn perfect_and_linked_layouts_agree_with_walking_the_tree() {
        for depth in [1, 3, 5, 7, 15] {
            let tree = chain(depth);
            let forest = Forest::new([(&tree, 0usize)].into_iter());
            let linked = matches!(forest.trees[0].kind, Kind::Linked { .. });
            // A chain has 2 * depth + 1 nodes; padding it to 2^depth leaves is refused past 4x.
            let expect_linked = (1usize << depth) > 4 * (2 * depth + 1);
            assert_eq!(linked, expect_linked, "depth {depth}");
            let mut block = Vec::new();
            for i in 0..200 {
                for f in 0..3 {
                    let v = ((i * 7 + f * 13) % 23) as f32 * 0.1 - 1.0;
                    block.push(if (i + f) % 11 == 0 { f32::NAN } else { v });
                }
            }
            let mut out = vec![0f32; 200];
            forest.predict_block(&block, 3, 1, &mut out);
            for (i, o) in out.iter().enumerate() {
                assert_eq!(
                    *o,
                    tree.predict_row(&block[i * 3..i * 3 + 3]),
                    "depth {depth} row {i}"
                );
            }
        }
    }
}
