//! Arrow record batches as a training table: numeric and boolean columns as `f32`, nulls as
//! NaN (missing values). Shared by the CLI and the enclave worker, so both read tables alike.

use arrow::array::{Array, Float32Array, RecordBatch};
use arrow::datatypes::DataType;

use crate::{DMatrix, GbdtError, Result};

/// Named `f32` columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub names: Vec<String>,
    pub columns: Vec<Vec<f32>>,
}

fn invalid(msg: String) -> GbdtError {
    GbdtError::InvalidData(msg)
}

impl Table {
    /// The columns of `batches`, which must share one schema. A column that is neither numeric
    /// nor boolean is refused by name; use [`Table::select`] first to leave it out.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let Some(first) = batches.first() else {
            return Ok(Self::default());
        };
        let names: Vec<String> = first
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut columns: Vec<Vec<f32>> = vec![Vec::new(); names.len()];
        for batch in batches {
            if batch.num_columns() != names.len() {
                return Err(invalid("batches with different schemas".into()));
            }
            for ((col, out), name) in batch.columns().iter().zip(&mut columns).zip(&names) {
                append_f32(col, name, out)?;
            }
        }
        Ok(Self { names, columns })
    }

    /// Rows.
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// Appends `other`'s rows; its column names must be the same, in the same order.
    pub fn stack(&mut self, other: Table) -> Result<()> {
        if self.names.is_empty() {
            *self = other;
            return Ok(());
        }
        if other.names != self.names {
            return Err(invalid(format!(
                "tables to stack have different columns: {:?} and {:?}",
                self.names, other.names
            )));
        }
        for (mine, theirs) in self.columns.iter_mut().zip(other.columns) {
            mine.extend(theirs);
        }
        Ok(())
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| invalid(format!("no column named {name:?}")))
    }

    /// Features (every column but `label`, or exactly `features` in that order) as a
    /// column-major matrix, with the label attached when asked for. A label with missing
    /// values is refused.
    pub fn matrix(&self, label: Option<&str>, features: Option<&[String]>) -> Result<DMatrix> {
        let label_idx = label.map(|l| self.index(l)).transpose()?;
        let feature_idx: Vec<usize> = match features {
            Some(f) => f.iter().map(|n| self.index(n)).collect::<Result<_>>()?,
            None => (0..self.names.len())
                .filter(|i| Some(*i) != label_idx)
                .collect(),
        };
        let n_rows = self.n_rows();
        let mut values = Vec::with_capacity(n_rows.saturating_mul(feature_idx.len()));
        let mut names = Vec::with_capacity(feature_idx.len());
        for i in &feature_idx {
            values.extend_from_slice(self.columns.get(*i).map_or(&[][..], Vec::as_slice));
            names.push(self.names.get(*i).cloned().unwrap_or_default());
        }
        let mut m = DMatrix::from_col_major(values, n_rows, feature_idx.len())?
            .with_feature_names(names)?;
        if let Some(l) = label_idx {
            let labels = self.columns.get(l).cloned().unwrap_or_default();
            if labels.iter().any(|v| v.is_nan()) {
                return Err(invalid(format!(
                    "label column {:?} has missing values",
                    label.unwrap_or_default()
                )));
            }
            m = m.with_labels(labels)?;
        }
        Ok(m)
    }
}

/// Appends a numeric or boolean Arrow column as `f32`, nulls as NaN.
fn append_f32(col: &dyn Array, name: &str, out: &mut Vec<f32>) -> Result<()> {
    let numeric = col.data_type().is_numeric() || matches!(col.data_type(), DataType::Boolean);
    if !numeric {
        return Err(invalid(format!(
            "column {name:?} is {}, not numeric",
            col.data_type()
        )));
    }
    let cast = arrow::compute::cast(col, &DataType::Float32)
        .map_err(|e| invalid(format!("column {name:?} as float: {e}")))?;
    let floats = cast
        .as_any()
        .downcast_ref::<Float32Array>()
        .ok_or_else(|| invalid("cast to Float32 gave another type".into()))?;
    out.extend(floats.iter().map(|v| v.unwrap_or(f32::NAN)));
    Ok(())
}
