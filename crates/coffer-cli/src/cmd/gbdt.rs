//! `coffer gbdt train|predict` and `coffer bench gbdt`: gradient-boosted trees over CSV or
//! (possibly encrypted) Parquet tables, with models in XGBoost's JSON format.
//!
//! The trainer is `coffer_gbdt`; this module only turns tables into its matrices (Arrow columns
//! to `f32`, nulls to NaN), reports progress and writes files atomically.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use coffer_client::gbdt::{self, TableSource};
use coffer_client::{AtomicFile, Home, Keyring};
use coffer_crypto::KeySource;
use coffer_gbdt::{DMatrix, Metric, Params, RoundLog};

use crate::exit::Usage;

#[derive(Debug, Subcommand)]
pub enum GbdtCommand {
    /// Train a model on a CSV or Parquet table (encrypted Parquet is decrypted with the keyring)
    Train(TrainArgs),
    /// Predict with an XGBoost JSON model; writes one CSV row per input row
    Predict(PredictArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training table: `.csv` with a header row, or Parquet (PME-encrypted or plaintext)
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// The label column; every other column is a feature
    #[arg(long, value_name = "COLUMN")]
    label: String,
    /// XGBoost parameters as a JSON object (`objective`, `eta`, `max_depth`, `num_boost_round`,
    /// `eval_metric`, `early_stopping_rounds`, ...)
    #[arg(long, value_name = "FILE")]
    params: Option<PathBuf>,
    /// Validation table (same columns), evaluated every round and used for early stopping
    #[arg(long, value_name = "FILE")]
    valid: Option<PathBuf>,
    /// Write the training curve (the last metric per round) as a PNG
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Where to write the model (XGBoost JSON, loadable by `xgboost.Booster(model_file=...)`)
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// An XGBoost JSON model
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Table to predict: `.csv` or Parquet (PME-encrypted or plaintext)
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Where to write the predictions (CSV)
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchGbdtArgs {
    /// Training rows (a test set of a quarter as many rows is generated too)
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Features per row
    #[arg(long, default_value_t = 28)]
    features: usize,
    /// Boosting rounds
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// Seed of the synthetic data
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Interleaved runs of both trainers; the best time of each is reported
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

pub fn run(home: &Home, command: GbdtCommand) -> anyhow::Result<()> {
    match command {
        GbdtCommand::Train(args) => train(home, &args),
        GbdtCommand::Predict(args) => predict(home, &args),
    }
}

fn train(home: &Home, args: &TrainArgs) -> anyhow::Result<()> {
    let params = match &args.params {
        Some(p) => gbdt::params(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| p.display().to_string())?,
        None => Params::default(),
    };
    let keys = keyring(home)?;
    let table = gbdt::read_table(TableSource::Path(&args.data), &keys)?;
    let valid = args
        .valid
        .as_deref()
        .map(|v| gbdt::read_table(TableSource::Path(v), &keys))
        .transpose()?;
    let bar = indicatif::ProgressBar::new(params.num_boost_round as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rounds {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut history: Vec<RoundLog> = Vec::new();
    let model = gbdt::train(&params, &table, &args.label, valid.as_ref(), &mut |log| {
        if let Some((name, value)) = log.scores.last() {
            bar.set_message(format!("{name} {value:.6}"));
        }
        bar.inc(1);
        history.push(log.clone());
    })
    .context("training")?;
    bar.finish();
    write_atomic(&args.output, gbdt::model_json(&model)?.as_bytes())?;
    if let Some(plot) = &args.plot {
        plot_curve(plot, &history)?;
    }
    let best = model
        .best_iteration()
        .map(|b| format!(", best {b}"))
        .unwrap_or_default();
    eprintln!(
        "Wrote {} ({} rounds{best})",
        args.output.display(),
        model.num_boosted_rounds()
    );
    Ok(())
}

fn predict(home: &Home, args: &PredictArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.model)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let model = gbdt::load_model(&text)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let table = gbdt::read_table(TableSource::Path(&args.data), &keyring(home)?)?;
    let preds = gbdt::predict(&model, &table)?;
    write_atomic(
        &args.output,
        gbdt::predictions_csv(&model, &preds).as_bytes(),
    )?;
    eprintln!(
        "Wrote {} predictions to {}",
        preds
            .len()
            .checked_div(model.n_groups())
            .unwrap_or(preds.len()),
        args.output.display()
    );
    Ok(())
}

fn keyring(home: &Home) -> anyhow::Result<Arc<dyn KeySource>> {
    Ok(Arc::new(Keyring::open(home)?))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = AtomicFile::create(path)?;
    out.file()
        .write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    out.commit()?;
    Ok(())
}

/// The DejaVu font Debian's `fonts-dejavu-core` installs; without it the curve has no labels.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn plot_curve(path: &Path, history: &[RoundLog]) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let Some(name) = history
        .first()
        .and_then(|l| l.scores.last())
        .map(|s| s.0.clone())
    else {
        bail!(Usage("--plot: no rounds were evaluated".into()));
    };
    let points: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|l| l.scores.last().map(|s| (l.iteration as f64, s.1)))
        .filter(|p| p.1.is_finite())
        .collect();
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let labels = match std::fs::read(FONT) {
        Ok(bytes) => plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .is_ok(),
        Err(_) => false,
    };
    if !labels {
        eprintln!("coffer: warning: {FONT} not found; the curve is drawn without labels");
    }
    let tmp = path.with_extension("coffer-tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let x_max = points.last().map_or(1.0, |p| p.0.max(1.0));
        let mut builder = ChartBuilder::on(&root);
        builder.margin(20);
        if labels {
            builder
                .caption(format!("{name} per round"), ("sans-serif", 24))
                .x_label_area_size(40)
                .y_label_area_size(70);
        }
        let mut chart = builder
            .build_cartesian_2d(0f64..x_max, (lo - pad)..(hi + pad))
            .map_err(plot_err)?;
        let mut mesh = chart.configure_mesh();
        if labels {
            mesh.x_desc("round").y_desc(name.as_str());
        } else {
            mesh.disable_x_mesh().disable_y_mesh();
        }
        mesh.draw().map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(points, &BLUE))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the training curve: {e}")
}

/// XGBoost's side of the benchmark: reads the raw matrices, times `DMatrix` + `train` and
/// `inplace_predict`, writes its predictions and times as JSON.
const XGB_BENCH_PY: &str = r#"
import json, sys, time
import numpy as np
import xgboost as xgb
d, rows, test_rows, nf, rounds = sys.argv[1], *map(int, sys.argv[2:6])
X = np.fromfile(f"{d}/X_train.f32", dtype="<f4").reshape(rows, nf)
y = np.fromfile(f"{d}/y_train.f32", dtype="<f4")
Xt = np.fromfile(f"{d}/X_test.f32", dtype="<f4").reshape(test_rows, nf)
params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.1,
          "max_bin": 256, "nthread": 2}
t = time.perf_counter()
booster = xgb.train(params, xgb.DMatrix(X, label=y, nthread=2), num_boost_round=rounds)
train_s = time.perf_counter() - t
t = time.perf_counter()
p = booster.inplace_predict(Xt)
predict_s = time.perf_counter() - t
p.astype("<f4").tofile(f"{d}/xgb_pred.f32")
json.dump({"train_s": train_s, "predict_s": predict_s, "version": xgb.__version__},
          open(f"{d}/xgb.json", "w"))
"#;

#[derive(Debug, Clone, Copy)]
struct Timing {
    train: Duration,
    predict: Duration,
    auc: f64,
}

pub fn bench(args: &BenchGbdtArgs) -> anyhow::Result<()> {
    if args.rows < 100 || args.features == 0 || args.rounds == 0 {
        bail!(Usage(
            "--rows must be >= 100, --features and --rounds > 0".into()
        ));
    }
    let test_rows = args.rows / 4;
    let nf = args.features;
    let (x, y) = coffer_gbdt::synth::higgs_like(args.rows.saturating_add(test_rows), nf, args.seed);
    let split = args.rows.saturating_mul(nf);
    let (x_train, x_test) = x.split_at(split.min(x.len()));
    let (y_train, y_test) = y.split_at(args.rows.min(y.len()));
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let d = dir.path();
    write_f32(&d.join("X_train.f32"), x_train)?;
    write_f32(&d.join("y_train.f32"), y_train)?;
    write_f32(&d.join("X_test.f32"), x_test)?;
    std::fs::write(d.join("bench.py"), XGB_BENCH_PY)?;
    let dtrain =
        DMatrix::from_row_major(x_train.to_vec(), args.rows, nf)?.with_labels(y_train.to_vec())?;
    let dtest = DMatrix::from_row_major(x_test.to_vec(), test_rows, nf)?;
    let params = Params::from_json(&format!(
        r#"{{"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "max_bin": 256,
            "nthread": 2, "num_boost_round": {}}}"#,
        args.rounds
    ))?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
    let (mut best_c, mut best_x): (Option<Timing>, Option<(Timing, String)>) = (None, None);
    for run in 0..args.runs.max(1) {
        eprintln!("run {}: xgboost ...", run.saturating_add(1));
        let xt = xgboost_run(d, args, test_rows, y_test)?;
        eprintln!("run {}: coffer ...", run.saturating_add(1));
        let t = Instant::now();
        let model = coffer_gbdt::train(&params, &dtrain, &[])?;
        let train_t = t.elapsed();
        let t = Instant::now();
        let preds = pool.install(|| model.predict(&dtest))?;
        let predict_t = t.elapsed();
        let ct = Timing {
            train: train_t,
            predict: predict_t,
            auc: coffer_gbdt::evaluate(Metric::Auc, &preds, 1, y_test, None),
        };
        best_c = Some(best(best_c, ct));
        best_x = Some(match best_x {
            Some((b, v)) => (best(Some(b), xt.0), v),
            None => xt,
        });
    }
    let (Some(c), Some((x, version))) = (best_c, best_x) else {
        bail!("no run completed");
    };
    print_bench(args, test_rows, &c, &x, &version);
    Ok(())
}

fn best(prev: Option<Timing>, new: Timing) -> Timing {
    match prev {
        Some(p) => Timing {
            train: p.train.min(new.train),
            predict: p.predict.min(new.predict),
            auc: new.auc,
        },
        None => new,
    }
}

fn xgboost_run(
    d: &Path,
    args: &BenchGbdtArgs,
    test_rows: usize,
    y_test: &[f32],
) -> anyhow::Result<(Timing, String)> {
    let python = std::env::var_os("COFFER_PYTHON").unwrap_or_else(|| "python3".into());
    let out = Command::new(&python)
        .arg(d.join("bench.py"))
        .arg(d)
        .args([args.rows, test_rows, args.features, args.rounds].map(|v| v.to_string()))
        .output()
        .with_context(|| format!("running {}", Path::new(&python).display()))?;
    if !out.status.success() {
        bail!(
            "the xgboost side failed (is xgboost installed for {}?):\n{}",
            Path::new(&python).display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("xgb.json"))?)?;
    let secs = |k: &str| report.get(k).and_then(serde_json::Value::as_f64);
    let (Some(train_s), Some(predict_s)) = (secs("train_s"), secs("predict_s")) else {
        bail!("the xgboost side wrote no timings");
    };
    let preds = read_f32(&d.join("xgb_pred.f32"))?;
    let version = report
        .get("version")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("?")
        .to_owned();
    Ok((
        Timing {
            train: Duration::from_secs_f64(train_s.max(0.0)),
            predict: Duration::from_secs_f64(predict_s.max(0.0)),
            auc: coffer_gbdt::evaluate(Metric::Auc, &preds, 1, y_test, None),
        },
        version,
    ))
}

fn print_bench(args: &BenchGbdtArgs, test_rows: usize, c: &Timing, x: &Timing, version: &str) {
    let rate = |rows: usize, t: Duration| rows as f64 / t.as_secs_f64().max(1e-9);
    println!(
        "HIGGS-like {} x {}, {} test rows, {} rounds, depth 6, eta 0.1, max_bin 256, 2 threads",
        args.rows, args.features, test_rows, args.rounds
    );
    println!(
        "{:<16} {:>10} {:>10} {:>16}",
        "", "train s", "test AUC", "predict rows/s"
    );
    for (name, t) in [("coffer-gbdt", c), (&*format!("xgboost {version}"), x)] {
        println!(
            "{:<16} {:>10.2} {:>10.5} {:>16.0}",
            name,
            t.train.as_secs_f64(),
            t.auc,
            rate(test_rows, t.predict)
        );
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "train_ratio={:.3} auc_delta={:+.5} predict_ratio={:.3}",
        ratio(c.train, x.train),
        c.auc - x.auc,
        ratio(c.predict, x.predict)
    );
}

fn write_f32(path: &Path, v: &[f32]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn read_f32(path: &Path) -> anyhow::Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes
        .chunks_exact(4)
        .filter_map(|c| <[u8; 4]>::try_from(c).ok())
        .map(f32::from_le_bytes)
        .collect())
}
