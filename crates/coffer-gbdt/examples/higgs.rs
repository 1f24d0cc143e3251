//! Profiling driver: train on HIGGS-like data and report phase times.
//!
//! `cargo run --release -p coffer-gbdt --example higgs -- [rows] [rounds] [threads]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::Instant;

use coffer_gbdt::{DMatrix, Metric, Params, evaluate, synth, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let rows = args.first().copied().unwrap_or(1_000_000);
    let rounds = args.get(1).copied().unwrap_or(100);
    let threads = args.get(2).copied().unwrap_or(2);
    let nf = 28;
    let t = Instant::now();
    let (x, y) = synth::higgs_like(rows + rows / 4, nf, 42);
    let split = rows * nf;
    let train_m =
        DMatrix::from_row_major(x[..split].to_vec(), rows, nf)?.with_labels(y[..rows].to_vec())?;
    let test_m = DMatrix::from_row_major(x[split..].to_vec(), rows / 4, nf)?
        .with_labels(y[rows..].to_vec())?;
    eprintln!("generate: {:.2}s", t.elapsed().as_secs_f64());
    if let Some(dir) = std::env::var_os("GBDT_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
        std::fs::write(dir.join("X_train.f32"), bytes(&x[..split]))?;
        std::fs::write(dir.join("y_train.f32"), bytes(&y[..rows]))?;
        std::fs::write(dir.join("X_test.f32"), bytes(&x[split..]))?;
        std::fs::write(dir.join("y_test.f32"), bytes(&y[rows..]))?;
    }
    let params = Params::from_json(&format!(
        r#"{{"objective":"binary:logistic","eta":0.1,"max_depth":6,"max_bin":256,"num_boost_round":{rounds},"nthread":{threads}}}"#
    ))?;
    let t = Instant::now();
    let model = train(&params, &train_m, &[])?;
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let preds = pool.install(|| model.predict(&test_m))?;
    let pred_s = t.elapsed().as_secs_f64();
    let auc = evaluate(Metric::Auc, &preds, 1, test_m.labels().unwrap(), None);
    println!("train {train_s:.2}s predict {pred_s:.3}s auc {auc:.5}");
    Ok(())
}
