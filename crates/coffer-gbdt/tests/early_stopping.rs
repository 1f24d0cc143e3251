#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! Evaluation sets, metrics and early stopping against `xgboost.train(evals=...,
//! early_stopping_rounds=...)`. On data this small the two grow the same trees, so every
//! round's scores must agree.

mod common;

use coffer_gbdt::{DMatrix, Params, RoundLog, train_with_callback};
use common::{path_str, peer, read_f32};
use serde_json::json;

fn load(dir: &std::path::Path, x: &str, y: &str, n: usize, nf: usize) -> DMatrix {
    DMatrix::from_row_major(read_f32(&dir.join(x)), n, nf)
        .unwrap()
        .with_labels(read_f32(&dir.join(y)))
        .unwrap()
}

#[test]
fn scores_and_best_iteration_match_xgboost() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    peer(
        d,
        &json!({"cmd": "dataset", "name": "breast_cancer", "seed": 11, "out": path_str(d)}),
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("meta.json")).unwrap()).unwrap();
    let (ntr, nte, nf) = (
        meta["n_train"].as_u64().unwrap() as usize,
        meta["n_test"].as_u64().unwrap() as usize,
        meta["n_cols"].as_u64().unwrap() as usize,
    );
    let params = json!({"objective": "binary:logistic", "eta": 0.5, "max_depth": 3,
        "eval_metric": ["auc", "logloss"]});
    let spec = |x: &str, y: &str, n: usize| json!({"X": path_str(&d.join(x)), "y": path_str(&d.join(y)), "n_rows": n, "n_cols": nf});
    peer(
        d,
        &json!({"cmd": "train", "params": params, "rounds": 300, "early_stopping_rounds": 8,
            "train": spec("X_train.f32", "y_train.f32", ntr), "valid": spec("X_test.f32", "y_test.f32", nte),
            "model_out": path_str(&d.join("xgb.json")), "result_out": path_str(&d.join("r.json"))}),
    );
    let theirs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();

    let mut p = params.clone();
    p["num_boost_round"] = json!(300);
    p["early_stopping_rounds"] = json!(8);
    let params = Params::from_map(p.as_object().unwrap()).unwrap();
    let dtrain = load(d, "X_train.f32", "y_train.f32", ntr, nf);
    let dvalid = load(d, "X_test.f32", "y_test.f32", nte, nf);
    let mut logs: Vec<RoundLog> = Vec::new();
    let model = train_with_callback(&params, &dtrain, &[("valid", &dvalid)], &mut |l| {
        logs.push(l.clone())
    })
    .unwrap();

    let their_best = theirs["best_iteration"].as_u64().unwrap() as usize;
    let their_rounds = theirs["num_boosted_rounds"].as_u64().unwrap() as usize;
    assert!(their_rounds < 300, "xgboost should stop early on this data");
    assert_eq!(model.best_iteration(), Some(their_best));
    assert_eq!(model.num_boosted_rounds(), their_rounds);
    assert_eq!(logs.len(), their_rounds);
    for metric in ["auc", "logloss"] {
        let series = theirs["evals_result"]["valid"][metric].as_array().unwrap();
        for (i, (log, v)) in logs.iter().zip(series).enumerate() {
            let (name, ours) = log
                .scores
                .iter()
                .find(|(n, _)| n.ends_with(metric))
                .unwrap();
            assert_eq!(name, &format!("valid-{metric}"));
            let v = v.as_f64().unwrap();
            assert!(
                (ours - v).abs() <= 1e-5,
                "round {i} {metric}: {ours} vs {v}"
            );
        }
    }
    // Truncating to the best round keeps exactly best_iteration + 1 rounds.
    let mut best = model.clone();
    best.truncate(their_best + 1);
    assert_eq!(best.num_boosted_rounds(), their_best + 1);
}
