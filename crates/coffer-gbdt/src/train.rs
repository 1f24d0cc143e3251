//! The boosting loop: gradients, one tree per output group per round, evaluation on validation
//! sets and early stopping, as `xgboost.train`.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::binning::Cuts;
use crate::booster::Booster;
use crate::data::DMatrix;
use crate::error::{GbdtError, Result};
use crate::grow::{GrowParams, Grown, grow};
use crate::hist::{AnyBins, GradPair};
use crate::metric::evaluate;
use crate::objective::{check_labels, estimate_base_score, gradients, transform};
use crate::params::{Metric, Params};
use crate::rng::Rng;
use crate::split::SplitParams;
use crate::tree::Tree;

/// Scores after one boosting round, in XGBoost's `"{set}-{metric}"` naming and order.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundLog {
    /// Zero-based round.
    pub iteration: usize,
    /// `("valid-auc", 0.91)`, ... for every evaluation set and metric.
    pub scores: Vec<(String, f64)>,
}

/// Trains a model. `evals` are named validation sets; the last metric on the last set drives
/// early stopping when `early_stopping_rounds` is set.
pub fn train(params: &Params, dtrain: &DMatrix, evals: &[(&str, &DMatrix)]) -> Result<Booster> {
    train_with_callback(params, dtrain, evals, &mut |_| {})
}

/// As [`train`], calling `on_round` after every round (progress bars, curves).
pub fn train_with_callback(
    params: &Params,
    dtrain: &DMatrix,
    evals: &[(&str, &DMatrix)],
    on_round: &mut (dyn FnMut(&RoundLog) + Send),
) -> Result<Booster> {
    params.validate()?;
    if (dtrain.n_rows() as u64) < params.min_leaf_rows {
        return Err(GbdtError::GroupTooSmall {
            min_leaf_rows: params.min_leaf_rows,
        });
    }
    match params.nthread {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| GbdtError::ThreadPool(e.to_string()))?
            .install(|| Trainer::new(params, dtrain, evals)?.run(on_round)),
        None => Trainer::new(params, dtrain, evals)?.run(on_round),
    }
}

struct EvalSet<'a> {
    name: String,
    m: &'a DMatrix,
    margins: Vec<f32>,
}

struct Trainer<'a> {
    params: &'a Params,
    dtrain: &'a DMatrix,
    k: usize,
    cuts: Cuts,
    bins: AnyBins,
    booster: Booster,
    margins: Vec<f32>,
    evals: Vec<EvalSet<'a>>,
    rng: Rng,
}

impl<'a> Trainer<'a> {
    fn new(params: &'a Params, dtrain: &'a DMatrix, evals: &[(&str, &'a DMatrix)]) -> Result<Self> {
        let k = params.n_groups();
        let labels = dtrain
            .labels()
            .ok_or_else(|| GbdtError::InvalidData("training data has no labels".into()))?;
        check_labels(params.objective, k, labels)?;
        if dtrain.n_rows() > u32::MAX as usize {
            return Err(GbdtError::InvalidData("more than 2^32 - 1 rows".into()));
        }
        for (name, m) in evals {
            if m.n_cols() != dtrain.n_cols() {
                return Err(GbdtError::InvalidData(format!(
                    "eval set {name}: column count differs"
                )));
            }
            let l = m
                .labels()
                .ok_or_else(|| GbdtError::InvalidData(format!("eval set {name} has no labels")))?;
            check_labels(params.objective, k, l)?;
        }
        if params.early_stopping_rounds.is_some() && evals.is_empty() {
            return Err(crate::error::invalid_param(
                "early_stopping_rounds",
                "needs at least one evaluation set",
            ));
        }
        let base_score = match params.base_score {
            Some(b) => vec![b; k],
            None => estimate_base_score(params.objective, k, dtrain),
        };
        let booster = Booster {
            objective: params.objective,
            n_groups: k,
            num_feature: dtrain.n_cols(),
            base_score,
            trees: Vec::new(),
            tree_info: Vec::new(),
            iteration_indptr: vec![0],
            feature_names: dtrain
                .feature_names()
                .map(<[String]>::to_vec)
                .unwrap_or_default(),
            attributes: BTreeMap::new(),
        };
        let base = booster.base_margins();
        let init = |n: usize| -> Vec<f32> { (0..n).flat_map(|_| base.iter().copied()).collect() };
        let cuts = Cuts::build(dtrain, params.max_bin)?;
        let bins = AnyBins::build(dtrain, &cuts);
        Ok(Self {
            params,
            dtrain,
            k,
            bins,
            cuts,
            margins: init(dtrain.n_rows()),
            evals: evals
                .iter()
                .map(|(name, m)| EvalSet {
                    name: (*name).to_owned(),
                    m,
                    margins: init(m.n_rows()),
                })
                .collect(),
            booster,
            rng: Rng::new(params.seed),
        })
    }

    fn run(mut self, on_round: &mut (dyn FnMut(&RoundLog) + Send)) -> Result<Booster> {
        let n = self.dtrain.n_rows();
        let mut gpairs = vec![vec![GradPair::default(); n]; self.k];
        let metrics = self.params.metrics();
        let mut stopper = self
            .params
            .early_stopping_rounds
            .map(|rounds| EarlyStop::new(rounds, metrics.last().copied()));
        for iteration in 0..self.params.num_boost_round {
            gradients(
                self.params.objective,
                self.k,
                self.dtrain,
                &self.margins,
                &mut gpairs,
            );
            for (group, gp) in gpairs.iter().enumerate() {
                let tree = self.grow_one(gp, group);
                self.booster.trees.push(tree);
                self.booster.tree_info.push(group);
            }
            self.booster.iteration_indptr.push(self.booster.trees.len());
            let log = self.evaluate(iteration, &metrics);
            on_round(&log);
            if let Some(s) = stopper.as_mut()
                && let Some((_, score)) = log.scores.last()
                && s.stop(iteration, *score)
            {
                break;
            }
        }
        if let Some(s) = stopper {
            self.booster
                .attributes
                .insert("best_iteration".into(), s.best_iteration.to_string());
            self.booster
                .attributes
                .insert("best_score".into(), s.best_score.to_string());
        }
        Ok(self.booster)
    }

    /// Grows one tree for output group `group` and adds it to the training margins.
    fn grow_one(&mut self, gp: &[GradPair], group: usize) -> Tree {
        let p = self.params;
        let n = self.dtrain.n_rows();
        let mut sampled = None;
        let positions: Vec<u32> = if p.subsample < 1.0 {
            let keep: Vec<bool> = (0..n)
                .map(|_| self.rng.next_f64() < f64::from(p.subsample))
                .collect();
            let pos = (0..n)
                .filter(|r| keep.get(*r).copied().unwrap_or(false))
                .filter_map(|r| u32::try_from(r).ok())
                .collect();
            sampled = Some(keep);
            pos
        } else {
            (0..n).filter_map(|r| u32::try_from(r).ok()).collect()
        };
        let mask = self.feature_mask();
        let gparams = GrowParams {
            split: SplitParams::from(p),
            eta: p.eta,
            gamma: p.gamma,
            max_depth: p.max_depth,
        };
        let grown = match &self.bins {
            AnyBins::U8(b) => grow(b, &self.cuts, gp, positions, &mask, &gparams),
            AnyBins::U16(b) => grow(b, &self.cuts, gp, positions, &mask, &gparams),
        };
        self.add_to_margins(&grown, group, sampled.as_deref());
        grown.tree
    }

    /// XGBoost's `colsample_bytree`: `max(1, floor(ratio * n))` features, drawn without
    /// replacement.
    fn feature_mask(&mut self) -> Vec<bool> {
        let nf = self.dtrain.n_cols();
        let ratio = self.params.colsample_bytree;
        if ratio >= 1.0 {
            return vec![true; nf];
        }
        let take = ((f64::from(ratio) * nf as f64) as usize).max(1).min(nf);
        let mut idx: Vec<usize> = (0..nf).collect();
        for i in 0..take {
            let j = i.saturating_add(self.rng.below(nf.saturating_sub(i)));
            idx.swap(i, j.min(nf.saturating_sub(1)));
        }
        let mut mask = vec![false; nf];
        for f in idx.iter().take(take) {
            if let Some(m) = mask.get_mut(*f) {
                *m = true;
            }
        }
        mask
    }

    fn add_to_margins(&mut self, grown: &Grown, group: usize, sampled: Option<&[bool]>) {
        let k = self.k;
        for (nid, start, end) in &grown.leaves {
            let value = grown.tree.nodes().get(*nid).map_or(0.0, |n| n.cond);
            for r in grown.positions.get(*start..*end).unwrap_or(&[]) {
                let i = (*r as usize).saturating_mul(k).saturating_add(group);
                if let Some(m) = self.margins.get_mut(i) {
                    *m += value;
                }
            }
        }
        if let Some(keep) = sampled {
            let dtrain = self.dtrain;
            let tree = &grown.tree;
            self.margins
                .par_chunks_mut(k)
                .zip(keep.par_iter())
                .enumerate()
                .filter(|(_, (_, kept))| !**kept)
                .for_each(|(r, (row_m, _))| {
                    let mut buf = Vec::new();
                    if let Some(m) = row_m.get_mut(group) {
                        *m += tree.predict_row(dtrain.row(r, &mut buf));
                    }
                });
        }
    }

    fn evaluate(&mut self, iteration: usize, metrics: &[Metric]) -> RoundLog {
        let k = self.k;
        let first_new = self.booster.trees.len().saturating_sub(k);
        let new: Vec<(&Tree, usize)> = self
            .booster
            .trees
            .iter()
            .zip(&self.booster.tree_info)
            .skip(first_new)
            .map(|(t, g)| (t, *g))
            .collect();
        let mut scores = Vec::new();
        for set in &mut self.evals {
            let m = set.m;
            set.margins
                .par_chunks_mut(k)
                .enumerate()
                .for_each(|(r, row_m)| {
                    let mut buf = Vec::new();
                    let row = m.row(r, &mut buf);
                    for (t, g) in &new {
                        if let Some(v) = row_m.get_mut(*g) {
                            *v += t.predict_row(row);
                        }
                    }
                });
            let mut preds = set.margins.clone();
            transform(self.params.objective, k, &mut preds);
            let labels = m.labels().unwrap_or(&[]);
            for metric in metrics {
                let v = evaluate(*metric, &preds, k, labels, m.weights());
                scores.push((format!("{}-{}", set.name, metric.name()), v));
            }
        }
        RoundLog { iteration, scores }
    }
}

/// XGBoost's `EarlyStopping` callback: stop once `rounds` rounds pass without improvement.
struct EarlyStop {
    rounds: usize,
    maximize: bool,
    best_iteration: usize,
    best_score: f64,
}

impl EarlyStop {
    fn new(rounds: usize, metric: Option<Metric>) -> Self {
        let maximize = metric.is_some_and(Metric::maximize);
        Self {
            rounds,
            maximize,
            best_iteration: 0,
            best_score: if maximize {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            },
        }
    }

    fn stop(&mut self, iteration: usize, score: f64) -> bool {
        let improved = if self.maximize {
            score > self.best_score
        } else {
            score < self.best_score
        };
        if improved || iteration == 0 {
            self.best_score = score;
            self.best_iteration = iteration;
            false
        } else {
            iteration.saturating_sub(self.best_iteration) >= self.rounds
        }
    }
}
