//! A trained (or loaded) model: trees, output groups, base score; prediction and importance.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::data::{DMatrix, Layout};
use crate::error::{GbdtError, Result};
use crate::forest::Forest;
use crate::objective::{base_margin, transform};
use crate::params::Objective;
use crate::tree::Tree;

/// Rows per prediction task.
const PREDICT_BLOCK: usize = 64;

/// A gradient-boosted tree ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct Booster {
    pub(crate) objective: Objective,
    /// Output groups: `num_class` for softprob, else 1.
    pub(crate) n_groups: usize,
    pub(crate) num_feature: usize,
    /// As XGBoost stores it: a probability for logistic, margins for softprob.
    pub(crate) base_score: Vec<f32>,
    pub(crate) trees: Vec<Tree>,
    /// Output group of each tree.
    pub(crate) tree_info: Vec<usize>,
    /// Trees of round `i` are `iteration_indptr[i]..iteration_indptr[i + 1]`.
    pub(crate) iteration_indptr: Vec<usize>,
    pub(crate) feature_names: Vec<String>,
    pub(crate) attributes: BTreeMap<String, String>,
}

/// Which statistic [`Booster::feature_importance`] reports (XGBoost's `importance_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportanceType {
    /// Number of splits on the feature.
    Weight,
    /// Average gain of its splits.
    Gain,
    /// Average cover (hessian sum) of its splits.
    Cover,
    /// Total gain of its splits.
    TotalGain,
    /// Total cover of its splits.
    TotalCover,
}

impl ImportanceType {
    /// Parses XGBoost's name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "weight" => Some(Self::Weight),
            "gain" => Some(Self::Gain),
            "cover" => Some(Self::Cover),
            "total_gain" => Some(Self::TotalGain),
            "total_cover" => Some(Self::TotalCover),
            _ => None,
        }
    }
}

impl Booster {
    /// The objective.
    pub fn objective(&self) -> Objective {
        self.objective
    }

    /// Predictions per row: `n_groups` of them for multi-class.
    pub fn n_groups(&self) -> usize {
        self.n_groups
    }

    /// Number of input features.
    pub fn num_features(&self) -> usize {
        self.num_feature
    }

    /// Feature names, empty when the training data had none.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The trees, in boosting order.
    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// Boosting rounds in the model.
    pub fn num_boosted_rounds(&self) -> usize {
        self.iteration_indptr.len().saturating_sub(1)
    }

    /// XGBoost's string attributes (`best_iteration`, `best_score` after early stopping).
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// The best round found by early stopping, if it ran.
    pub fn best_iteration(&self) -> Option<usize> {
        self.attributes.get("best_iteration")?.parse().ok()
    }

    /// The base score as stored (probability for logistic, margins for softprob).
    pub fn base_score(&self) -> &[f32] {
        &self.base_score
    }

    /// Keeps only the first `rounds` boosting rounds (e.g. `best_iteration + 1`).
    pub fn truncate(&mut self, rounds: usize) {
        if let Some(&end) = self.iteration_indptr.get(rounds) {
            self.trees.truncate(end);
            self.tree_info.truncate(end);
            self.iteration_indptr.truncate(rounds.saturating_add(1));
        }
    }

    pub(crate) fn base_margins(&self) -> Vec<f32> {
        (0..self.n_groups)
            .map(|g| {
                let b = self
                    .base_score
                    .get(g)
                    .or(self.base_score.first())
                    .copied()
                    .unwrap_or(0.5);
                base_margin(self.objective, b)
            })
            .collect()
    }

    /// Predictions (probabilities for the classifiers), row-major `n_rows x n_groups`.
    pub fn predict(&self, m: &DMatrix) -> Result<Vec<f32>> {
        let mut out = self.predict_margin(m, None)?;
        transform(self.objective, self.n_groups, &mut out);
        Ok(out)
    }

    /// Raw margins of the first `rounds` rounds (all when `None`), row-major.
    pub fn predict_margin(&self, m: &DMatrix, rounds: Option<usize>) -> Result<Vec<f32>> {
        if m.n_cols() != self.num_feature {
            return Err(GbdtError::InvalidData(format!(
                "model has {} features, data has {}",
                self.num_feature,
                m.n_cols()
            )));
        }
        let end = rounds
            .and_then(|r| self.iteration_indptr.get(r).copied())
            .unwrap_or(self.trees.len());
        let k = self.n_groups.max(1);
        let base = self.base_margins();
        let mut out = vec![0f32; m.n_rows().saturating_mul(k)];
        let forest = Forest::new(
            self.trees
                .iter()
                .zip(self.tree_info.iter().copied())
                .take(end),
        );
        out.par_chunks_mut(PREDICT_BLOCK.saturating_mul(k))
            .enumerate()
            .for_each(|(block, dst)| {
                let first = block.saturating_mul(PREDICT_BLOCK);
                let n = dst.len().checked_div(k).unwrap_or(0);
                for row_out in dst.chunks_mut(k) {
                    row_out.copy_from_slice(base.get(..k).unwrap_or(&[]));
                }
                let nf = m.n_cols();
                let start = first.saturating_mul(nf);
                let end = start.saturating_add(n.saturating_mul(nf));
                match (m.layout(), m.values().get(start..end)) {
                    (Layout::RowMajor, Some(block)) => forest.predict_block(block, nf, k, dst),
                    _ => {
                        let mut block = Vec::with_capacity(n.saturating_mul(nf));
                        let mut buf = Vec::new();
                        for i in 0..n {
                            block.extend_from_slice(m.row(first.saturating_add(i), &mut buf));
                        }
                        forest.predict_block(&block, nf, k, dst);
                    }
                }
            });
        Ok(out)
    }

    /// Feature importance as XGBoost's `get_score`: only features used in a split appear; keys
    /// are feature names, or `f{index}` without names.
    pub fn feature_importance(&self, kind: ImportanceType) -> BTreeMap<String, f64> {
        let mut acc: BTreeMap<usize, (f64, f64, f64)> = BTreeMap::new();
        for node in self
            .trees
            .iter()
            .flat_map(|t| t.nodes())
            .filter(|n| !n.is_leaf())
        {
            let e = acc.entry(node.feature as usize).or_default();
            e.0 += 1.0;
            e.1 += f64::from(node.loss_change);
            e.2 += f64::from(node.sum_hess);
        }
        acc.into_iter()
            .map(|(f, (count, gain, cover))| {
                let name = self
                    .feature_names
                    .get(f)
                    .cloned()
                    .unwrap_or_else(|| format!("f{f}"));
                let v = match kind {
                    ImportanceType::Weight => count,
                    ImportanceType::Gain => gain / count,
                    ImportanceType::Cover => cover / count,
                    ImportanceType::TotalGain => gain,
                    ImportanceType::TotalCover => cover,
                };
                (name, v)
            })
            .collect()
    }
}
