#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! Both directions against the real `xgboost` package, for every objective, with NaNs.

mod common;

use coffer_gbdt::{Booster, Cuts, DMatrix, ImportanceType, Params, train};
use common::{matrix, max_abs_diff, path_str, peer, read_f32, synthetic, write_f32};
use serde_json::json;

const N_TRAIN: usize = 3000;
const N_TEST: usize = 1000;
const NF: usize = 6;

fn objective_params(objective: &str) -> serde_json::Value {
    let mut p = json!({
        "objective": objective, "eta": 0.3, "max_depth": 5, "min_child_weight": 1.0,
        "lambda": 1.5, "alpha": 0.1, "gamma": 0.05, "max_bin": 64, "seed": 3,
    });
    if objective == "multi:softprob" {
        p["num_class"] = json!(3);
    }
    p
}

fn feature_names() -> Vec<String> {
    (0..NF).map(|i| format!("col_{i}")).collect()
}

/// A model Coffer trains is loaded by `xgboost.Booster(model_file=...)` and predicts the same.
fn coffer_to_xgboost(objective: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = synthetic(N_TRAIN, NF, objective, 1);
    let (xt, _) = synthetic(N_TEST, NF, objective, 2);
    let mut p = objective_params(objective);
    p["subsample"] = json!(0.8);
    p["colsample_bytree"] = json!(0.7);
    p["num_boost_round"] = json!(12);
    let params = Params::from_map(p.as_object().unwrap()).unwrap();
    let dtrain = matrix(x, y, NF)
        .with_feature_names(feature_names())
        .unwrap();
    let model = train(&params, &dtrain, &[]).unwrap();
    let model_path = dir.path().join("coffer.json");
    model.save_json(&model_path).unwrap();
    let dtest = DMatrix::from_row_major(xt.clone(), N_TEST, NF).unwrap();
    let ours = model.predict(&dtest).unwrap();
    write_f32(&dir.path().join("xt.f32"), &xt);
    for margin in [false, true] {
        let out = dir.path().join(format!("pred-{margin}.f32"));
        peer(
            dir.path(),
            &json!({"cmd": "predict", "model": path_str(&model_path), "X": path_str(&dir.path().join("xt.f32")),
                    "n_rows": N_TEST, "n_cols": NF, "out": path_str(&out), "margin": margin,
                    "feature_names": feature_names()}),
        );
        let theirs = read_f32(&out);
        let expected = if margin {
            model.predict_margin(&dtest, None).unwrap()
        } else {
            ours.clone()
        };
        let d = max_abs_diff(&expected, &theirs);
        assert!(
            d <= 1e-5,
            "{objective} margin={margin}: max |coffer - xgboost| = {d}"
        );
    }
    assert!(
        model.trees().iter().any(|t| t.nodes().len() > 7),
        "trees should be non-trivial"
    );
}

/// A model XGBoost trains is loaded by Coffer and predicts the same; importance agrees.
fn xgboost_to_coffer(objective: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = synthetic(N_TRAIN, NF, objective, 4);
    let (xt, _) = synthetic(N_TEST, NF, objective, 5);
    let d = dir.path();
    write_f32(&d.join("x.f32"), &x);
    write_f32(&d.join("y.f32"), &y);
    write_f32(&d.join("xt.f32"), &xt);
    let mut p = objective_params(objective);
    p["subsample"] = json!(0.9);
    peer(
        d,
        &json!({"cmd": "train", "params": p, "rounds": 15,
        "train": {"X": path_str(&d.join("x.f32")), "y": path_str(&d.join("y.f32")), "n_rows": N_TRAIN, "n_cols": NF},
        "model_out": path_str(&d.join("xgb.json")), "result_out": path_str(&d.join("result.json")),
        "predict": [
            {"X": path_str(&d.join("xt.f32")), "n_rows": N_TEST, "n_cols": NF, "out": path_str(&d.join("p.f32"))},
            {"X": path_str(&d.join("xt.f32")), "n_rows": N_TEST, "n_cols": NF, "out": path_str(&d.join("m.f32")), "margin": true}
        ]}),
    );
    let model = Booster::load_json(&d.join("xgb.json")).unwrap();
    let dtest = DMatrix::from_row_major(xt, N_TEST, NF).unwrap();
    let diff = max_abs_diff(&model.predict(&dtest).unwrap(), &read_f32(&d.join("p.f32")));
    assert!(diff <= 1e-5, "{objective}: max |coffer - xgboost| = {diff}");
    let diff = max_abs_diff(
        &model.predict_margin(&dtest, None).unwrap(),
        &read_f32(&d.join("m.f32")),
    );
    assert!(
        diff <= 1e-5,
        "{objective} margins: max |coffer - xgboost| = {diff}"
    );
    assert_eq!(model.num_boosted_rounds(), 15);

    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("result.json")).unwrap()).unwrap();
    for (name, kind) in [
        ("weight", ImportanceType::Weight),
        ("gain", ImportanceType::Gain),
        ("cover", ImportanceType::Cover),
    ] {
        let theirs = result["importance"][name].as_object().unwrap();
        let ours = model.feature_importance(kind);
        assert_eq!(ours.len(), theirs.len(), "{name} importance keys");
        for (k, v) in theirs {
            let (a, b) = (ours[k], v.as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{name}[{k}]: {a} vs {b}"
            );
        }
    }
    // Saving what we loaded keeps it loadable and identical.
    let again = Booster::from_json(&model.to_json().unwrap()).unwrap();
    assert_eq!(again, model);
}

#[test]
fn coffer_model_in_xgboost_regression() {
    coffer_to_xgboost("reg:squarederror");
}

#[test]
fn coffer_model_in_xgboost_binary() {
    coffer_to_xgboost("binary:logistic");
}

#[test]
fn coffer_model_in_xgboost_multiclass() {
    coffer_to_xgboost("multi:softprob");
}

#[test]
fn xgboost_model_in_coffer_regression() {
    xgboost_to_coffer("reg:squarederror");
}

#[test]
fn xgboost_model_in_coffer_binary() {
    xgboost_to_coffer("binary:logistic");
}

#[test]
fn xgboost_model_in_coffer_multiclass() {
    xgboost_to_coffer("multi:softprob");
}

/// For data that fits XGBoost's sketch buffer, our cut points are XGBoost's, bit for bit.
#[test]
fn cuts_match_xgboost_on_small_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = synthetic(500, NF, "binary:logistic", 9);
    write_f32(&d.join("x.f32"), &x);
    write_f32(&d.join("y.f32"), &y);
    for max_bin in [16usize, 256] {
        peer(
            d,
            &json!({"cmd": "cuts", "X": path_str(&d.join("x.f32")), "y": path_str(&d.join("y.f32")),
                    "n_rows": 500, "n_cols": NF, "max_bin": max_bin, "out": path_str(&d.join("cuts.json"))}),
        );
        let theirs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("cuts.json")).unwrap()).unwrap();
        let ptr: Vec<usize> = theirs["ptr"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let values: Vec<f32> = theirs["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let ours = Cuts::build(&matrix(x.clone(), y.clone(), NF), max_bin).unwrap();
        for f in 0..NF {
            // xgboost lists the minimum first, then the cuts.
            let their_cuts = &values[ptr[f] + 1..ptr[f + 1]];
            assert_eq!(
                ours.feature(f),
                their_cuts,
                "max_bin {max_bin}, feature {f}"
            );
            assert_eq!(
                ours.min_value(f),
                values[ptr[f]],
                "max_bin {max_bin}, min of feature {f}"
            );
        }
    }
}
