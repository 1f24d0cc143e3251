//! `coffer gbdt`: train on CSV and on PME-encrypted Parquet through the keyring, predict, and
//! refuse what cannot be read.
use crate::common::Party;

/// A small binary task: the label is 1 when x0 + x1 > 1, with a noise column and some gaps.
fn csv(rows: usize) -> String {
    let mut s = String::from("x0,x1,noise,label\n");
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..rows {
        let (a, b, n) = (next(), next(), next());
        let label = u8::from(a + b > 1.0);
        let a = if i % 17 == 0 {
            String::new()
        } else {
            format!("{a:.5}")
        };
        s.push_str(&format!("{a},{b:.5},{n:.5},{label}\n"));
    }
    s
}

#[test]
fn train_predict_and_encrypted_parquet_give_the_same_model() {
    let p = Party::init("alpha");
    std::fs::write(p.path("train.csv"), csv(3000)).unwrap();
    std::fs::write(p.path("test.csv"), csv(500)).unwrap();
    std::fs::write(
        p.path("params.json"),
        r#"{"objective": "binary:logistic", "eta": 0.3, "max_depth": 4, "num_boost_round": 30, "eval_metric": "auc", "seed": 7}"#,
    )
    .unwrap();
    p.ok(&[
        "gbdt",
        "train",
        "--data",
        "train.csv",
        "--label",
        "label",
        "--params",
        "params.json",
        "--valid",
        "test.csv",
        "-o",
        "model.json",
    ]);
    let model = std::fs::read_to_string(p.path("model.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&model).unwrap();
    assert_eq!(v["learner"]["objective"]["name"], "binary:logistic");

    // Predictions are probabilities that separate the classes.
    std::fs::write(p.path("features.csv"), {
        let full = csv(500);
        full.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_owned() + "\n")
            .collect::<String>()
    })
    .unwrap();
    p.ok(&[
        "gbdt",
        "predict",
        "--model",
        "model.json",
        "--data",
        "features.csv",
        "-o",
        "preds.csv",
    ]);
    let preds = std::fs::read_to_string(p.path("preds.csv")).unwrap();
    let labels: Vec<u8> = csv(500)
        .lines()
        .skip(1)
        .map(|l| l.rsplit_once(',').unwrap().1.parse().unwrap())
        .collect();
    let probs: Vec<f64> = preds.lines().skip(1).map(|l| l.parse().unwrap()).collect();
    assert_eq!(probs.len(), labels.len());
    let correct = probs
        .iter()
        .zip(&labels)
        .filter(|(p, l)| (**p > 0.5) == (**l == 1))
        .count();
    assert!(
        correct * 100 >= 90 * labels.len(),
        "{correct}/{}",
        labels.len()
    );

    // The same table as PME-encrypted Parquet, read through the keyring: the same model.
    p.ok(&["key", "new", "k1"]);
    p.ok(&[
        "encrypt",
        "train.csv",
        "-o",
        "train.parquet",
        "--footer-key",
        "k1",
    ]);
    p.ok(&[
        "gbdt",
        "train",
        "--data",
        "train.parquet",
        "--label",
        "label",
        "--params",
        "params.json",
        "--valid",
        "test.csv",
        "-o",
        "model2.json",
    ]);
    assert_eq!(
        std::fs::read_to_string(p.path("model2.json")).unwrap(),
        model
    );

    // Without the key: refused, and no model written.
    let other = Party::init("beta");
    std::fs::copy(p.path("train.parquet"), other.path("train.parquet")).unwrap();
    let err = other.fails(
        1,
        &[
            "gbdt",
            "train",
            "--data",
            "train.parquet",
            "--label",
            "label",
            "-o",
            "m.json",
        ],
    );
    assert!(err.contains("k1"), "{err}");
    assert!(!other.path("m.json").exists());
    // A label column that is not there: usage error.
    let err = p.fails(
        2,
        &[
            "gbdt",
            "train",
            "--data",
            "train.csv",
            "--label",
            "nope",
            "-o",
            "m.json",
        ],
    );
    assert!(err.contains("nope"), "{err}");
    assert!(!p.path("m.json").exists());
}
