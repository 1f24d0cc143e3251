//! Training parameters, with XGBoost's names, defaults and aliases.

use serde_json::{Map, Value};

use crate::error::{GbdtError, Result, invalid_param};

/// Learning objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// `reg:squarederror`.
    SquaredError,
    /// `binary:logistic`: labels in `[0, 1]`, predictions are probabilities.
    BinaryLogistic,
    /// `multi:softprob`: labels `0..num_class`, predictions are `num_class` probabilities per row.
    MultiSoftprob,
}

impl Objective {
    /// XGBoost's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SquaredError => "reg:squarederror",
            Self::BinaryLogistic => "binary:logistic",
            Self::MultiSoftprob => "multi:softprob",
        }
    }

    /// Parses XGBoost's name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "reg:squarederror" => Some(Self::SquaredError),
            "binary:logistic" => Some(Self::BinaryLogistic),
            "multi:softprob" => Some(Self::MultiSoftprob),
            _ => None,
        }
    }

    /// The metric XGBoost evaluates when none is given.
    pub fn default_metric(self) -> Metric {
        match self {
            Self::SquaredError => Metric::Rmse,
            Self::BinaryLogistic => Metric::LogLoss,
            Self::MultiSoftprob => Metric::MLogLoss,
        }
    }
}

/// Evaluation metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Root mean squared error.
    Rmse,
    /// Binary negative log-likelihood.
    LogLoss,
    /// Area under the ROC curve (binary).
    Auc,
    /// Multi-class negative log-likelihood.
    MLogLoss,
    /// Multi-class error rate.
    MError,
}

impl Metric {
    /// XGBoost's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rmse => "rmse",
            Self::LogLoss => "logloss",
            Self::Auc => "auc",
            Self::MLogLoss => "mlogloss",
            Self::MError => "merror",
        }
    }

    /// Parses XGBoost's name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "rmse" => Some(Self::Rmse),
            "logloss" => Some(Self::LogLoss),
            "auc" => Some(Self::Auc),
            "mlogloss" => Some(Self::MLogLoss),
            "merror" => Some(Self::MError),
            _ => None,
        }
    }

    /// Whether larger is better (for early stopping).
    pub fn maximize(self) -> bool {
        matches!(self, Self::Auc)
    }
}

/// Training parameters. Float parameters are `f32` because XGBoost stores them so, and the
/// leaf values it computes depend on that rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `objective`.
    pub objective: Objective,
    /// `num_class` (multi-class only).
    pub num_class: usize,
    /// `eta` / `learning_rate`.
    pub eta: f32,
    /// `max_depth` (0 is refused: depthwise growth needs a bound).
    pub max_depth: u32,
    /// `min_child_weight`: minimum hessian sum in a child.
    pub min_child_weight: f32,
    /// `lambda` / `reg_lambda`: L2 regularisation on leaf weights.
    pub lambda: f32,
    /// `alpha` / `reg_alpha`: L1 regularisation on leaf weights.
    pub alpha: f32,
    /// `gamma` / `min_split_loss`.
    pub gamma: f32,
    /// `subsample`: row sampling ratio per tree.
    pub subsample: f32,
    /// `colsample_bytree`: feature sampling ratio per tree.
    pub colsample_bytree: f32,
    /// `base_score`; `None` estimates it from the labels, as XGBoost does.
    pub base_score: Option<f32>,
    /// `num_boost_round` / `n_estimators`.
    pub num_boost_round: usize,
    /// `seed` / `random_state`.
    pub seed: u64,
    /// `max_bin`.
    pub max_bin: usize,
    /// `nthread` / `n_jobs`; `None` uses rayon's global pool.
    pub nthread: Option<usize>,
    /// `eval_metric`; empty means the objective's default.
    pub eval_metric: Vec<Metric>,
    /// `early_stopping_rounds`.
    pub early_stopping_rounds: Option<usize>,
    /// Coffer's own, not an XGBoost parameter (not read from a parameter map): every leaf of
    /// every tree covers at least this many training rows, and training on fewer is refused.
    /// A manifest's `min_group_size` sets it, so no leaf singles out a row.
    pub min_leaf_rows: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            objective: Objective::SquaredError,
            num_class: 0,
            eta: 0.3,
            max_depth: 6,
            min_child_weight: 1.0,
            lambda: 1.0,
            alpha: 0.0,
            gamma: 0.0,
            subsample: 1.0,
            colsample_bytree: 1.0,
            base_score: None,
            num_boost_round: 10,
            seed: 0,
            max_bin: 256,
            nthread: None,
            eval_metric: Vec::new(),
            early_stopping_rounds: None,
            min_leaf_rows: 0,
        }
    }
}

/// Keys XGBoost users commonly pass that do not change what this trainer does.
const IGNORED: &[&str] = &[
    "verbosity",
    "silent",
    "validate_parameters",
    "disable_default_eval_metric",
];

impl Params {
    /// Parses a JSON object with XGBoost's parameter names. Numbers may be given as JSON numbers
    /// or as strings, as XGBoost accepts both. Unknown keys are refused.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)?;
        let Value::Object(map) = value else {
            return Err(invalid_param("<root>", "parameters must be a JSON object"));
        };
        Self::from_map(&map)
    }

    /// As [`Params::from_json`], from a parsed object.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self> {
        let mut p = Self::default();
        for (key, value) in map {
            p.set(key, value)?;
        }
        p.validate()?;
        Ok(p)
    }

    fn set(&mut self, key: &str, v: &Value) -> Result<()> {
        match key {
            "objective" => {
                let s = string(key, v)?;
                self.objective = Objective::from_name(&s)
                    .ok_or_else(|| invalid_param(key, format!("unsupported objective {s:?}")))?;
            }
            "num_class" => self.num_class = int(key, v)?,
            "eta" | "learning_rate" => self.eta = float(key, v)?,
            "max_depth" => {
                self.max_depth =
                    u32::try_from(int(key, v)?).map_err(|_| invalid_param(key, "too large"))?;
            }
            "min_child_weight" => self.min_child_weight = float(key, v)?,
            "lambda" | "reg_lambda" => self.lambda = float(key, v)?,
            "alpha" | "reg_alpha" => self.alpha = float(key, v)?,
            "gamma" | "min_split_loss" => self.gamma = float(key, v)?,
            "subsample" => self.subsample = float(key, v)?,
            "colsample_bytree" => self.colsample_bytree = float(key, v)?,
            "base_score" => self.base_score = Some(float(key, v)?),
            "num_boost_round" | "n_estimators" => self.num_boost_round = int(key, v)?,
            "seed" | "random_state" => self.seed = int(key, v)? as u64,
            "max_bin" => self.max_bin = int(key, v)?,
            "nthread" | "n_jobs" => {
                let n = int(key, v)?;
                self.nthread = (n > 0).then_some(n);
            }
            "eval_metric" => {
                let names = match v {
                    Value::Array(items) => items
                        .iter()
                        .map(|i| string(key, i))
                        .collect::<Result<Vec<_>>>()?,
                    other => vec![string(key, other)?],
                };
                self.eval_metric = names
                    .iter()
                    .map(|n| {
                        Metric::from_name(n)
                            .ok_or_else(|| invalid_param(key, format!("unsupported metric {n:?}")))
                    })
                    .collect::<Result<_>>()?;
            }
            "early_stopping_rounds" => {
                self.early_stopping_rounds = match v {
                    Value::Null => None,
                    other => Some(int(key, other)?),
                };
            }
            "tree_method" => expect_str(key, v, &["hist", "auto"])?,
            "booster" => expect_str(key, v, &["gbtree"])?,
            "device" => expect_str(key, v, &["cpu"])?,
            "grow_policy" => expect_str(key, v, &["depthwise"])?,
            k if IGNORED.contains(&k) => {}
            _ => return Err(invalid_param(key, "unknown parameter")),
        }
        Ok(())
    }

    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<()> {
        let multi = self.objective == Objective::MultiSoftprob;
        if multi && self.num_class < 2 {
            return Err(invalid_param(
                "num_class",
                "multi:softprob needs num_class >= 2",
            ));
        }
        if !multi && self.num_class > 1 {
            return Err(invalid_param(
                "num_class",
                "only multi:softprob takes num_class",
            ));
        }
        if self.num_class > 1 << 16 {
            return Err(invalid_param("num_class", "too large"));
        }
        let positive = |name: &str, x: f32| {
            if x.is_finite() && x > 0.0 {
                Ok(())
            } else {
                Err(invalid_param(name, "must be > 0"))
            }
        };
        let non_negative = |name: &str, x: f32| {
            if x.is_finite() && x >= 0.0 {
                Ok(())
            } else {
                Err(invalid_param(name, "must be >= 0"))
            }
        };
        positive("eta", self.eta)?;
        non_negative("min_child_weight", self.min_child_weight)?;
        non_negative("lambda", self.lambda)?;
        non_negative("alpha", self.alpha)?;
        non_negative("gamma", self.gamma)?;
        let ratio = |name: &str, x: f32| {
            if x > 0.0 && x <= 1.0 {
                Ok(())
            } else {
                Err(invalid_param(name, "must be in (0, 1]"))
            }
        };
        ratio("subsample", self.subsample)?;
        ratio("colsample_bytree", self.colsample_bytree)?;
        if self.max_depth == 0 || self.max_depth > 30 {
            return Err(invalid_param("max_depth", "must be in 1..=30"));
        }
        if !(2..=65_535).contains(&self.max_bin) {
            return Err(invalid_param("max_bin", "must be in 2..=65535"));
        }
        if let Some(b) = self.base_score {
            if !b.is_finite() {
                return Err(invalid_param("base_score", "must be finite"));
            }
            if self.objective == Objective::BinaryLogistic && !(b > 0.0 && b < 1.0) {
                return Err(invalid_param(
                    "base_score",
                    "must be in (0, 1) for binary:logistic",
                ));
            }
        }
        for m in &self.eval_metric {
            let ok = match self.objective {
                Objective::SquaredError => *m == Metric::Rmse,
                Objective::BinaryLogistic => {
                    matches!(m, Metric::LogLoss | Metric::Auc | Metric::Rmse)
                }
                Objective::MultiSoftprob => matches!(m, Metric::MLogLoss | Metric::MError),
            };
            if !ok {
                return Err(invalid_param(
                    "eval_metric",
                    format!("{} does not apply to {}", m.name(), self.objective.name()),
                ));
            }
        }
        Ok(())
    }

    /// Number of output groups (trees per round).
    pub fn n_groups(&self) -> usize {
        if self.objective == Objective::MultiSoftprob {
            self.num_class
        } else {
            1
        }
    }

    /// The metrics to evaluate, the objective's default when none were given.
    pub fn metrics(&self) -> Vec<Metric> {
        if self.eval_metric.is_empty() {
            vec![self.objective.default_metric()]
        } else {
            self.eval_metric.clone()
        }
    }
}

/// Deserialises from a JSON object with XGBoost's names, with [`Params::from_map`]'s checks.
impl<'de> serde::Deserialize<'de> for Params {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        Self::from_map(&map).map_err(serde::de::Error::custom)
    }
}

fn string(key: &str, v: &Value) -> Result<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid_param(key, "expected a string"))
}

fn expect_str(key: &str, v: &Value, allowed: &[&str]) -> Result<()> {
    let s = string(key, v)?;
    if allowed.contains(&s.as_str()) {
        Ok(())
    } else {
        Err(invalid_param(
            key,
            format!("{s:?} is not supported (only {allowed:?})"),
        ))
    }
}

fn float(key: &str, v: &Value) -> Result<f32> {
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid_param(key, "expected a number"))?;
    if !x.is_finite() {
        return Err(invalid_param(key, "must be finite"));
    }
    Ok(x as f32)
}

fn int(key: &str, v: &Value) -> Result<usize> {
    let x = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid_param(key, "expected a non-negative integer"))?;
    usize::try_from(x).map_err(|_| GbdtError::InvalidParam {
        name: key.to_owned(),
        reason: "too large".into(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_xgboost_names_and_aliases() {
        let p = Params::from_json(
            r#"{"objective":"multi:softprob","num_class":"3","learning_rate":0.1,
                "max_depth":4,"reg_lambda":2,"alpha":"0.5","eval_metric":["mlogloss","merror"],
                "early_stopping_rounds":5,"tree_method":"hist","seed":7,"nthread":2}"#,
        )
        .unwrap();
        assert_eq!(p.objective, Objective::MultiSoftprob);
        assert_eq!(p.num_class, 3);
        assert_eq!(p.eta, 0.1);
        assert_eq!(p.lambda, 2.0);
        assert_eq!(p.alpha, 0.5);
        assert_eq!(p.eval_metric, vec![Metric::MLogLoss, Metric::MError]);
        assert_eq!(p.early_stopping_rounds, Some(5));
        assert_eq!(p.nthread, Some(2));
        assert_eq!(p.n_groups(), 3);
    }

    #[test]
    fn deserialises_inside_other_documents() {
        #[derive(serde::Deserialize)]
        struct Job {
            params: Params,
        }
        let job: Job =
            serde_json::from_str(r#"{"params": {"eta": "0.05", "max_depth": 3}}"#).unwrap();
        assert_eq!((job.params.eta, job.params.max_depth), (0.05, 3));
        assert!(serde_json::from_str::<Job>(r#"{"params": {"max_depth": 0}}"#).is_err());
    }

    #[test]
    fn refuses_unknown_and_out_of_range() {
        assert!(Params::from_json(r#"{"etaa":0.1}"#).is_err());
        assert!(Params::from_json(r#"{"subsample":0}"#).is_err());
        assert!(Params::from_json(r#"{"objective":"multi:softprob"}"#).is_err());
        assert!(Params::from_json(r#"{"tree_method":"exact"}"#).is_err());
        assert!(
            Params::from_json(r#"{"objective":"reg:squarederror","eval_metric":"auc"}"#).is_err()
        );
        assert!(Params::from_json("[1]").is_err());
    }
}
