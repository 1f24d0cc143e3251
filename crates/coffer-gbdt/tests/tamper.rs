#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! Model files are attacker-controlled: malformed ones give errors, never panics.

mod common;

use coffer_gbdt::{Booster, DMatrix, GbdtError, Params, train};
use common::{Lcg, matrix, synthetic};
use serde_json::{Value, json};

fn model_json(objective: &str) -> String {
    let (x, y) = synthetic(400, 5, objective, 11);
    let mut p = json!({"objective": objective, "max_depth": 3, "num_boost_round": 3});
    if objective == "multi:softprob" {
        p["num_class"] = json!(3);
    }
    let params = Params::from_map(p.as_object().unwrap()).unwrap();
    train(&params, &matrix(x, y, 5), &[])
        .unwrap()
        .to_json()
        .unwrap()
}

type Edit = Box<dyn FnOnce(&mut Value)>;

fn tree0(v: &mut Value) -> &mut Value {
    &mut v["learner"]["gradient_booster"]["model"]["trees"][0]
}

fn load_edited(edit: impl FnOnce(&mut Value)) -> Result<Booster, GbdtError> {
    let mut v: Value = serde_json::from_str(&model_json("binary:logistic")).unwrap();
    edit(&mut v);
    Booster::from_json(&v.to_string())
}

#[test]
fn truncated_model_is_an_error() {
    let text = model_json("multi:softprob");
    assert!(Booster::from_json(&text).is_ok());
    for cut in (0..text.len()).step_by(37) {
        assert!(
            Booster::from_json(&text[..cut]).is_err(),
            "prefix of {cut} bytes loaded"
        );
    }
}

#[test]
fn structural_tampering_is_an_error() {
    let cases: Vec<(&str, Edit)> = vec![
        (
            "child out of range",
            Box::new(|v| tree0(v)["left_children"][0] = json!(999)),
        ),
        (
            "negative child",
            Box::new(|v| tree0(v)["right_children"][0] = json!(-7)),
        ),
        (
            "huge child",
            Box::new(|v| tree0(v)["left_children"][0] = json!(1u64 << 40)),
        ),
        (
            "cycle to root",
            Box::new(|v| tree0(v)["left_children"][1] = json!(0)),
        ),
        (
            "self loop",
            Box::new(|v| tree0(v)["left_children"][0] = json!(0)),
        ),
        (
            "shared child",
            Box::new(|v| {
                let r = tree0(v)["right_children"][0].clone();
                tree0(v)["left_children"][0] = r;
            }),
        ),
        (
            "half leaf",
            Box::new(|v| tree0(v)["right_children"][0] = json!(-1)),
        ),
        (
            "short array",
            Box::new(|v| {
                tree0(v)["split_conditions"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "num_nodes lies",
            Box::new(|v| tree0(v)["tree_param"]["num_nodes"] = json!("100000")),
        ),
        (
            "num_nodes not a number",
            Box::new(|v| tree0(v)["tree_param"]["num_nodes"] = json!("x")),
        ),
        (
            "feature out of range",
            Box::new(|v| tree0(v)["split_indices"][0] = json!(5)),
        ),
        (
            "negative feature",
            Box::new(|v| tree0(v)["split_indices"][0] = json!(-1)),
        ),
        (
            "default_left 2",
            Box::new(|v| tree0(v)["default_left"][0] = json!(2)),
        ),
        (
            "wrong type",
            Box::new(|v| tree0(v)["split_conditions"][0] = json!("a")),
        ),
        (
            "tree_info out of range",
            Box::new(|v| {
                v["learner"]["gradient_booster"]["model"]["tree_info"][0] = json!(1);
            }),
        ),
        (
            "tree_info short",
            Box::new(|v| {
                v["learner"]["gradient_booster"]["model"]["tree_info"]
                    .as_array_mut()
                    .unwrap()
                    .pop();
            }),
        ),
        (
            "indptr wrong",
            Box::new(|v| {
                v["learner"]["gradient_booster"]["model"]["iteration_indptr"] = json!([0, 2, 1, 3]);
            }),
        ),
        (
            "base_score garbage",
            Box::new(|v| v["learner"]["learner_model_param"]["base_score"] = json!("[zz]")),
        ),
        (
            "base_score out of (0,1)",
            Box::new(|v| v["learner"]["learner_model_param"]["base_score"] = json!("[1.5E0]")),
        ),
        (
            "num_feature huge",
            Box::new(|v| v["learner"]["learner_model_param"]["num_feature"] = json!("99999999999")),
        ),
        (
            "num_class on binary",
            Box::new(|v| v["learner"]["learner_model_param"]["num_class"] = json!("4")),
        ),
        (
            "feature names length",
            Box::new(|v| v["learner"]["feature_names"] = json!(["a"])),
        ),
        (
            "missing learner",
            Box::new(|v| *v = json!({"version": [3, 2, 0]})),
        ),
        ("not an object", Box::new(|v| *v = json!([1, 2, 3]))),
    ];
    for (name, edit) in cases {
        let r = load_edited(edit);
        assert!(
            matches!(r, Err(GbdtError::MalformedModel(_) | GbdtError::Json(_))),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn unsupported_features_are_refused_clearly() {
    let r = load_edited(|v| tree0(v)["split_type"][0] = json!(1));
    let Err(GbdtError::Unsupported(msg)) = r else {
        panic!("categorical split accepted: {r:?}")
    };
    assert!(msg.contains("categorical"), "{msg}");
    let r = load_edited(|v| v["learner"]["gradient_booster"]["name"] = json!("dart"));
    assert!(matches!(r, Err(GbdtError::Unsupported(_))), "{r:?}");
    let r = load_edited(|v| v["learner"]["objective"]["name"] = json!("rank:pairwise"));
    assert!(matches!(r, Err(GbdtError::Unsupported(_))), "{r:?}");
}

/// Random byte flips: loading either fails or yields a model that predicts without panicking.
#[test]
fn random_corruption_never_panics() {
    let text = model_json("reg:squarederror").into_bytes();
    let mut rng = Lcg::new(77);
    let data = DMatrix::from_row_major(vec![0.5, f32::NAN, -1.0, 2.0, 0.0], 1, 5).unwrap();
    let mut loaded = 0;
    for _ in 0..2000 {
        let mut t = text.clone();
        for _ in 0..1 + (rng.next_f32() * 3.0) as usize {
            let i = (rng.next_f32() * t.len() as f32) as usize % t.len();
            t[i] = b"0123456789-,[]{}\":eE. a"[(rng.next_f32() * 23.0) as usize % 23];
        }
        let Ok(s) = std::str::from_utf8(&t) else {
            continue;
        };
        if let Ok(m) = Booster::from_json(s) {
            loaded += 1;
            let _ = m.predict(&data);
        }
    }
    // Some flips hit numbers and leave a valid model: the loop exercised the predictor too.
    assert!(loaded > 0);
}
