//! Gradient-boosted trees on a party's own tables: CSV or (possibly PME-encrypted) Parquet
//! read into `coffer_gbdt` matrices (Arrow columns to `f32`, nulls to NaN), models in
//! XGBoost's JSON format. Encrypted Parquet is decrypted with the party's keyring, in
//! memory.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use coffer_crypto::KeySource;
use coffer_gbdt::{Booster, DMatrix, GbdtError, Params, RoundLog, Table};
use coffer_parquet::{DecryptOptions, DecryptedReader};

use crate::Error;

/// Where a table comes from.
#[derive(Debug, Clone, Copy)]
pub enum TableSource<'a> {
    /// A `.csv` file with a header row, or a Parquet file (encrypted or not).
    Path(&'a Path),
    /// Plaintext Parquet bytes (what the Python SDK passes for a DataFrame).
    Parquet(&'a [u8]),
}

fn gbdt(e: GbdtError) -> Error {
    match e {
        GbdtError::GroupTooSmall { .. } => Error::Refused {
            check: "group_too_small".into(),
            message: e.to_string(),
        },
        GbdtError::MalformedModel(_) | GbdtError::Unsupported(_) | GbdtError::Json(_) => {
            Error::Refused {
                check: "model".into(),
                message: e.to_string(),
            }
        }
        _ => Error::InvalidArgument(e.to_string()),
    }
}

/// Reads a table; Parquet goes through `keys`, so encrypted files are decrypted and plaintext
/// ones read as they are.
pub fn read_table(source: TableSource<'_>, keys: &Arc<dyn KeySource>) -> Result<Table, Error> {
    let (what, batches): (String, Vec<RecordBatch>) = match source {
        TableSource::Path(path) => {
            let what = path.display().to_string();
            let batches = if crate::tables::is_parquet(path)? {
                let file = File::open(path).map_err(Error::io(path))?;
                DecryptedReader::open(file, keys.clone(), &DecryptOptions::default())?
                    .collect::<Result<_, _>>()?
            } else {
                let (_, reader) = coffer_parquet::read_csv(path, None)?;
                reader
                    .collect::<Result<_, _>>()
                    .map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))?
            };
            (what, batches)
        }
        TableSource::Parquet(bytes) => {
            let (_, reader) = coffer_parquet::read_parquet(bytes::Bytes::copy_from_slice(bytes))?;
            let batches = reader
                .collect::<Result<_, _>>()
                .map_err(|e| Error::InvalidArgument(format!("table: {e}")))?;
            ("table".to_owned(), batches)
        }
    };
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Err(Error::InvalidArgument(format!("{what}: no rows")));
    }
    Table::from_batches(&batches).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
}

/// XGBoost parameters from a JSON object (`objective`, `eta`, `max_depth`,
/// `num_boost_round`, `eval_metric`, `early_stopping_rounds`, …).
pub fn params(json: &str) -> Result<Params, Error> {
    Params::from_json(json).map_err(gbdt)
}

/// Trains on `train` (label column `label`, every other column a feature), evaluating on
/// `valid` (else the training set) every round; `progress` sees each round's log.
pub fn train(
    params: &Params,
    train: &Table,
    label: &str,
    valid: Option<&Table>,
    progress: &mut (dyn FnMut(&RoundLog) + Send),
) -> Result<Booster, Error> {
    let dtrain = train.matrix(Some(label), None).map_err(gbdt)?;
    let dvalid = valid
        .map(|v| v.matrix(Some(label), dtrain.feature_names()))
        .transpose()
        .map_err(gbdt)?;
    let evals: Vec<(&str, &DMatrix)> = match &dvalid {
        Some(v) => vec![("valid", v)],
        None => vec![("train", &dtrain)],
    };
    coffer_gbdt::train_with_callback(params, &dtrain, &evals, progress).map_err(gbdt)
}

/// A model from XGBoost JSON text.
pub fn load_model(text: &str) -> Result<Booster, Error> {
    Booster::from_json(text).map_err(gbdt)
}

/// The model as XGBoost JSON text.
pub fn model_json(model: &Booster) -> Result<String, Error> {
    model.to_json().map_err(gbdt)
}

/// Predictions for every row of `table`, `n_groups` per row (the model's feature names pick
/// the columns, when it has them).
pub fn predict(model: &Booster, table: &Table) -> Result<Vec<f32>, Error> {
    let names = (!model.feature_names().is_empty()).then(|| model.feature_names().to_vec());
    let data = table.matrix(None, names.as_deref()).map_err(gbdt)?;
    model.predict(&data).map_err(gbdt)
}

/// Predictions as CSV: a `prediction` column, or `class_0..` for multi-class models.
pub fn predictions_csv(model: &Booster, preds: &[f32]) -> String {
    let k = model.n_groups().max(1);
    let mut csv = if k == 1 {
        "prediction\n".to_owned()
    } else {
        let header: Vec<String> = (0..k).map(|c| format!("class_{c}")).collect();
        header.join(",") + "\n"
    };
    for row in preds.chunks(k) {
        let cells: Vec<String> = row.iter().map(f32::to_string).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    csv
}
