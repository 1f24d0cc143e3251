//! A DataFusion session over a job's encrypted Parquet inputs, held in memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_crypto::{KeyId, KeySource, MemoryKeys};
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;

use crate::context::Input;
use crate::refusal::{Check, Refusal};

/// Where a job's inputs live inside the worker's DataFusion session (memory only).
const INPUT_URL: &str = "coffer-job://inputs/";

/// A session in which each input is a table named after its dataset, whose master key ids map
/// to the dataset's released key. Two inputs naming one master key are refused
/// (`key_conflict`): a key released for one dataset must not open another's columns.
pub(crate) async fn session(inputs: Vec<Input>) -> Result<SessionContext, Refusal> {
    let ctx = SessionContext::new();
    let store = Arc::new(InMemory::new());
    let base = url::Url::parse(INPUT_URL).map_err(|e| Check::Internal.because(e.to_string()))?;
    ctx.register_object_store(&base, store.clone());
    let mut keys = MemoryKeys::new();
    let mut owner_of: BTreeMap<String, String> = BTreeMap::new();
    let mut names = Vec::new();
    for input in inputs {
        let name = input.dataset;
        let inspection = coffer_parquet::inspect(
            &input.ciphertext,
            None,
            &coffer_parquet::DecryptOptions::default(),
        )
        .map_err(|e| Check::InputFormat.because(format!("input {name}: {e}")))?;
        if inspection.key_ids.is_empty() {
            return Err(
                Check::InputFormat.because(format!("input {name} is not encrypted Parquet"))
            );
        }
        for kid in inspection.key_ids {
            if let Some(other) = owner_of.get(&kid)
                && *other != name
            {
                return Err(Check::KeyConflict.because(format!(
                    "inputs {other} and {name} both name master key {kid:?}"
                )));
            }
            let id = KeyId::new(kid.clone())
                .map_err(|e| Check::InputFormat.because(format!("input {name}: {e}")))?;
            keys.insert(id, input.key.clone());
            owner_of.insert(kid, name.clone());
        }
        store
            .put(
                &ObjectPath::from(format!("{name}.parquet")),
                input.ciphertext.into(),
            )
            .await
            .map_err(|e| Check::Internal.because(e.to_string()))?;
        names.push(name);
    }
    let keys: Arc<dyn KeySource> = Arc::new(keys);
    for name in &names {
        coffer_sql::register_encrypted_parquet(
            &ctx,
            name,
            &format!("{INPUT_URL}{name}.parquet"),
            Arc::clone(&keys),
        )
        .await
        .map_err(|e| Check::Internal.because(format!("registering {name}: {e}")))?;
    }
    Ok(ctx)
}

/// `"col"`, quoted for SQL.
pub(crate) fn quote(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}
