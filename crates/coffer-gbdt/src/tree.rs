//! A regression tree in XGBoost's layout: node `0` is the root, leaves have `left == -1` and
//! keep their value in `cond` (XGBoost's `split_conditions`).

/// One node, the fields of XGBoost's JSON tree arrays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    /// Left child, `-1` for a leaf.
    pub left: i32,
    /// Right child, `-1` for a leaf.
    pub right: i32,
    /// Parent, `i32::MAX` for the root (XGBoost's convention).
    pub parent: i32,
    /// Feature tested.
    pub feature: u32,
    /// Split threshold (`x < cond` goes left), or the leaf value.
    pub cond: f32,
    /// Where missing values go.
    pub default_left: bool,
    /// Weight of the node (for leaves: the leaf value, learning rate applied).
    pub base_weight: f32,
    /// Gain of the split (0 for leaves).
    pub loss_change: f32,
    /// Hessian sum (cover) of the node.
    pub sum_hess: f32,
}

impl Node {
    /// Whether the node is a leaf.
    pub fn is_leaf(&self) -> bool {
        self.left < 0
    }

    fn leaf(value: f32, parent: i32, sum_hess: f32) -> Self {
        Self {
            left: -1,
            right: -1,
            parent,
            feature: 0,
            cond: value,
            default_left: false,
            base_weight: value,
            loss_change: 0.0,
            sum_hess,
        }
    }
}

/// A tree whose nodes are reachable from the root exactly once (checked when loading).
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub(crate) nodes: Vec<Node>,
}

/// What [`Tree::expand`] needs to know about a split.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expansion {
    pub feature: u32,
    pub cond: f32,
    pub default_left: bool,
    pub base_weight: f32,
    pub loss_change: f32,
    pub left_value: f32,
    pub right_value: f32,
    pub left_hess: f32,
    pub right_hess: f32,
}

impl Tree {
    /// A single leaf.
    pub(crate) fn single_leaf(value: f32, sum_hess: f32) -> Self {
        Self {
            nodes: vec![Node::leaf(value, i32::MAX, sum_hess)],
        }
    }

    /// Nodes in XGBoost's order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Turns leaf `nid` into a split with two new leaves; returns their ids.
    pub(crate) fn expand(&mut self, nid: usize, e: Expansion) -> Option<(usize, usize)> {
        let l = self.nodes.len();
        let r = l.checked_add(1)?;
        let (li, ri, pi) = (
            i32::try_from(l).ok()?,
            i32::try_from(r).ok()?,
            i32::try_from(nid).ok()?,
        );
        let node = self.nodes.get_mut(nid)?;
        node.left = li;
        node.right = ri;
        node.feature = e.feature;
        node.cond = e.cond;
        node.default_left = e.default_left;
        node.base_weight = e.base_weight;
        node.loss_change = e.loss_change;
        self.nodes.push(Node::leaf(e.left_value, pi, e.left_hess));
        self.nodes.push(Node::leaf(e.right_value, pi, e.right_hess));
        Some((l, r))
    }

    /// The leaf a row ends in.
    pub fn leaf_index(&self, row: &[f32]) -> usize {
        let mut n = 0usize;
        // A checked tree is acyclic, so a path is never longer than the node count; the bound
        // makes termination independent of that check.
        for _ in 0..=self.nodes.len() {
            let Some(node) = self.nodes.get(n) else {
                return 0;
            };
            if node.is_leaf() {
                return n;
            }
            let x = row.get(node.feature as usize).copied().unwrap_or(f32::NAN);
            let next = if x.is_nan() {
                if node.default_left {
                    node.left
                } else {
                    node.right
                }
            } else if x < node.cond {
                node.left
            } else {
                node.right
            };
            n = usize::try_from(next).unwrap_or(usize::MAX);
        }
        0
    }

    /// The leaf value for a row.
    pub fn predict_row(&self, row: &[f32]) -> f32 {
        self.nodes.get(self.leaf_index(row)).map_or(0.0, |n| n.cond)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn expand_and_route() {
        let mut t = Tree::single_leaf(0.0, 10.0);
        let (l, r) = t
            .expand(
                0,
                Expansion {
                    feature: 1,
                    cond: 0.5,
                    default_left: true,
                    base_weight: 0.1,
                    loss_change: 3.0,
                    left_value: -1.0,
                    right_value: 2.0,
                    left_hess: 4.0,
                    right_hess: 6.0,
                },
            )
            .unwrap();
        assert_eq!((l, r), (1, 2));
        assert_eq!(t.predict_row(&[9.0, 0.4]), -1.0);
        assert_eq!(t.predict_row(&[9.0, 0.5]), 2.0);
        assert_eq!(t.predict_row(&[9.0, f32::NAN]), -1.0);
        assert_eq!(t.predict_row(&[9.0]), -1.0);
        assert_eq!(t.nodes()[1].parent, 0);
    }
}
