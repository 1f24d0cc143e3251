#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! Caller mistakes are typed errors, as XGBoost refuses them.

mod common;

use coffer_gbdt::{GbdtError, Params, train};
use common::{matrix, synthetic};

#[test]
fn early_stopping_without_eval_set_is_refused() {
    let (x, y) = synthetic(200, 4, "binary:logistic", 1);
    let p =
        Params::from_json(r#"{"objective":"binary:logistic","early_stopping_rounds":3}"#).unwrap();
    let r = train(&p, &matrix(x, y, 4), &[]);
    assert!(
        matches!(r, Err(GbdtError::InvalidParam { ref name, .. }) if name == "early_stopping_rounds"),
        "{r:?}"
    );
}

#[test]
fn labels_out_of_range_are_refused() {
    let (x, _) = synthetic(10, 4, "binary:logistic", 1);
    let p = Params::from_json(r#"{"objective":"binary:logistic"}"#).unwrap();
    let r = train(&p, &matrix(x.clone(), vec![2.0; 10], 4), &[]);
    assert!(matches!(r, Err(GbdtError::InvalidData(_))), "{r:?}");
    let p = Params::from_json(r#"{"objective":"multi:softprob","num_class":3}"#).unwrap();
    let r = train(&p, &matrix(x, vec![3.0; 10], 4), &[]);
    assert!(matches!(r, Err(GbdtError::InvalidData(_))), "{r:?}");
}

#[test]
fn eval_set_with_other_columns_is_refused() {
    let (x, y) = synthetic(50, 4, "reg:squarederror", 1);
    let (x5, y5) = synthetic(50, 5, "reg:squarederror", 1);
    let p = Params::default();
    let r = train(&p, &matrix(x, y, 4), &[("valid", &matrix(x5, y5, 5))]);
    assert!(matches!(r, Err(GbdtError::InvalidData(_))), "{r:?}");
}
