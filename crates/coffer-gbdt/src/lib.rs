//! Histogram-based gradient-boosted decision trees, compatible with XGBoost's JSON model format.
//!
//! The trainer follows XGBoost's `tree_method=hist` with depthwise growth: weighted quantile
//! cuts (`max_bin`), gradient/hessian histograms with the subtraction trick, XGBoost's split
//! gain and leaf weight (`lambda`, `alpha`, `gamma`, `min_child_weight`), a learned default
//! direction for missing values (NaN), row and column sampling, evaluation sets with early
//! stopping, and `gain` / `weight` / `cover` feature importance. Work runs on rayon over fixed
//! row blocks summed in a fixed order, so a model depends on its data, parameters and seed,
//! never on the thread count.
//!
//! Main types: [`DMatrix`] (dense `f32` input), [`Params`] (XGBoost's parameter names),
//! [`train`] / [`train_with_callback`], [`Booster`] (predict, importance, JSON save/load),
//! [`synth::higgs_like`] (deterministic benchmark data).
//!
//! Fidelity: quantile cuts reproduce XGBoost's exactly while a feature's values fit XGBoost's
//! sketch buffer (a few thousand rows at `max_bin = 256`); with those cuts the trees are
//! XGBoost's, split for split. On larger data XGBoost's sketch is approximate and ours is not,
//! so models differ slightly (test AUC within a few 1e-3). Row and column sampling use our own
//! generator, so sampled models match XGBoost's in distribution only.
//!
//! Limits: dense input only; depthwise growth only; no categorical features, monotone or
//! interaction constraints, `max_delta_step`, ranking or other objectives.
//!
//! ```
//! use coffer_gbdt::{train, Booster, DMatrix, Params};
//!
//! let x: Vec<f32> = (0..200).map(|i| (i % 20) as f32).collect();
//! let y: Vec<f32> = x.iter().map(|v| if *v > 9.0 { 1.0 } else { 0.0 }).collect();
//! let d = DMatrix::from_row_major(x, 200, 1)?.with_labels(y)?;
//! let params = Params::from_json(r#"{"objective": "binary:logistic", "num_boost_round": 5}"#)?;
//! let model = train(&params, &d, &[])?;
//! let json = model.to_json()?; // loadable by xgboost.Booster(model_file=...)
//! let again = Booster::from_json(&json)?;
//! assert_eq!(again.predict(&d)?, model.predict(&d)?);
//! # Ok::<(), coffer_gbdt::GbdtError>(())
//! ```
//!
//! Security: [`Booster::from_json`] parses attacker-controlled model files without panicking:
//! malformed structure, out-of-range indices and cycles are errors; categorical splits and other
//! boosters are refused as [`GbdtError::Unsupported`]. There are no optional features.
#![forbid(unsafe_code)]

mod binning;
mod booster;
mod data;
mod error;
mod forest;
mod grow;
mod hist;
mod json;
mod metric;
mod objective;
mod params;
mod rng;
mod split;
pub mod synth;
mod table;
mod train;
mod tree;

pub use binning::Cuts;
pub use booster::{Booster, ImportanceType};
pub use data::{DMatrix, Layout};
pub use error::{GbdtError, Result};
pub use metric::evaluate;
pub use params::{Metric, Objective, Params};
pub use split::{SplitParams, Stat, calc_gain, calc_weight, threshold_l1};
pub use table::Table;
pub use train::{RoundLog, train, train_with_callback};
pub use tree::{Node, Tree};
