#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! Same data, parameters and seed: byte-identical models whatever the thread count.

mod common;

use coffer_gbdt::{Params, train};
use common::{matrix, synthetic};
use serde_json::json;

#[test]
fn model_json_is_identical_across_thread_counts() {
    // Enough rows for several fixed-size blocks per node, so threads really split the work.
    let (x, y) = synthetic(60_000, 8, "multi:softprob", 21);
    let d = matrix(x, y, 8);
    let mut outputs = Vec::new();
    for nthread in [1, 2, 3] {
        let p = json!({"objective": "multi:softprob", "num_class": 3, "num_boost_round": 4,
            "max_depth": 6, "subsample": 0.8, "colsample_bytree": 0.75, "seed": 5, "nthread": nthread});
        let params = Params::from_map(p.as_object().unwrap()).unwrap();
        outputs.push(train(&params, &d, &[]).unwrap().to_json().unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
    // A different seed changes the sampled rows, hence the model.
    let p = json!({"objective": "multi:softprob", "num_class": 3, "num_boost_round": 4,
        "max_depth": 6, "subsample": 0.8, "colsample_bytree": 0.75, "seed": 6});
    let other = train(&Params::from_map(p.as_object().unwrap()).unwrap(), &d, &[]).unwrap();
    assert_ne!(outputs[0], other.to_json().unwrap());
}

/// Column-major and row-major inputs train the same model and predict the same.
#[test]
fn layouts_are_interchangeable() {
    let (n, nf) = (5_000, 6);
    let (x, y) = synthetic(n, nf, "binary:logistic", 8);
    let mut cm = vec![0f32; n * nf];
    for r in 0..n {
        for c in 0..nf {
            cm[c * n + r] = x[r * nf + c];
        }
    }
    let rm = matrix(x, y.clone(), nf);
    let cmm = coffer_gbdt::DMatrix::from_col_major(cm, n, nf)
        .unwrap()
        .with_labels(y)
        .unwrap();
    let p = json!({"objective": "binary:logistic", "num_boost_round": 5, "max_depth": 4});
    let params = Params::from_map(p.as_object().unwrap()).unwrap();
    let a = train(&params, &rm, &[]).unwrap();
    let b = train(&params, &cmm, &[]).unwrap();
    assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
    assert_eq!(a.predict(&rm).unwrap(), a.predict(&cmm).unwrap());
    // Prediction through the flat forest equals walking each tree.
    let margins = a.predict_margin(&rm, None).unwrap();
    let base = margins[0]
        - a.trees()
            .iter()
            .map(|t| t.predict_row(&rm.values()[..nf]))
            .sum::<f32>();
    for r in (0..n).step_by(97) {
        let row = &rm.values()[r * nf..(r + 1) * nf];
        let walked: f32 = base + a.trees().iter().map(|t| t.predict_row(row)).sum::<f32>();
        assert!((walked - margins[r]).abs() < 1e-5, "row {r}");
    }
}
