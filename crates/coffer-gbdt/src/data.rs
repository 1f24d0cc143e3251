//! The input matrix: dense `f32` values, NaN for missing, with optional labels and weights.

use crate::error::{GbdtError, Result};

/// How [`DMatrix`] values are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `values[row * n_cols + col]`.
    RowMajor,
    /// `values[col * n_rows + row]`.
    ColMajor,
}

/// A dense feature matrix (`NaN` = missing) with optional labels, weights and feature names.
///
/// Infinite values are refused, as XGBoost refuses them.
#[derive(Debug, Clone)]
pub struct DMatrix {
    values: Vec<f32>,
    n_rows: usize,
    n_cols: usize,
    layout: Layout,
    labels: Option<Vec<f32>>,
    weights: Option<Vec<f32>>,
    feature_names: Option<Vec<String>>,
}

impl DMatrix {
    /// A matrix from `n_rows * n_cols` values laid out as `layout`.
    pub fn new(values: Vec<f32>, n_rows: usize, n_cols: usize, layout: Layout) -> Result<Self> {
        let expected = n_rows
            .checked_mul(n_cols)
            .ok_or_else(|| GbdtError::InvalidData("matrix too large".into()))?;
        if values.len() != expected {
            return Err(GbdtError::InvalidData(format!(
                "{} values for a {n_rows} x {n_cols} matrix",
                values.len()
            )));
        }
        if values.iter().any(|v| v.is_infinite()) {
            return Err(GbdtError::InvalidData("infinite value in matrix".into()));
        }
        Ok(Self {
            values,
            n_rows,
            n_cols,
            layout,
            labels: None,
            weights: None,
            feature_names: None,
        })
    }

    /// A row-major matrix.
    pub fn from_row_major(values: Vec<f32>, n_rows: usize, n_cols: usize) -> Result<Self> {
        Self::new(values, n_rows, n_cols, Layout::RowMajor)
    }

    /// A column-major matrix.
    pub fn from_col_major(values: Vec<f32>, n_rows: usize, n_cols: usize) -> Result<Self> {
        Self::new(values, n_rows, n_cols, Layout::ColMajor)
    }

    /// Attaches one finite label per row.
    pub fn with_labels(mut self, labels: Vec<f32>) -> Result<Self> {
        self.check_per_row("labels", &labels)?;
        self.labels = Some(labels);
        Ok(self)
    }

    /// Attaches one finite, non-negative weight per row.
    pub fn with_weights(mut self, weights: Vec<f32>) -> Result<Self> {
        self.check_per_row("weights", &weights)?;
        if weights.iter().any(|w| *w < 0.0) {
            return Err(GbdtError::InvalidData("negative weight".into()));
        }
        self.weights = Some(weights);
        Ok(self)
    }

    /// Attaches one name per column.
    pub fn with_feature_names(mut self, names: Vec<String>) -> Result<Self> {
        if names.len() != self.n_cols {
            return Err(GbdtError::InvalidData(format!(
                "{} feature names for {} columns",
                names.len(),
                self.n_cols
            )));
        }
        self.feature_names = Some(names);
        Ok(self)
    }

    fn check_per_row(&self, what: &str, v: &[f32]) -> Result<()> {
        if v.len() != self.n_rows {
            return Err(GbdtError::InvalidData(format!(
                "{} {what} for {} rows",
                v.len(),
                self.n_rows
            )));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(GbdtError::InvalidData(format!(
                "non-finite value in {what}"
            )));
        }
        Ok(())
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns (features).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// The layout of [`DMatrix::values`].
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The raw values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Labels, if attached.
    pub fn labels(&self) -> Option<&[f32]> {
        self.labels.as_deref()
    }

    /// Weights, if attached.
    pub fn weights(&self) -> Option<&[f32]> {
        self.weights.as_deref()
    }

    /// Feature names, if attached.
    pub fn feature_names(&self) -> Option<&[String]> {
        self.feature_names.as_deref()
    }

    /// Weight of row `r` (1 without weights).
    pub(crate) fn weight(&self, r: usize) -> f32 {
        self.weights
            .as_ref()
            .and_then(|w| w.get(r).copied())
            .unwrap_or(1.0)
    }

    /// Copies column `c` into `out` (cleared first).
    pub(crate) fn column_into(&self, c: usize, out: &mut Vec<f32>) {
        out.clear();
        match self.layout {
            Layout::ColMajor => {
                let start = c.saturating_mul(self.n_rows);
                let end = start.saturating_add(self.n_rows);
                out.extend_from_slice(self.values.get(start..end).unwrap_or(&[]));
            }
            Layout::RowMajor => out.extend(
                self.values
                    .iter()
                    .skip(c)
                    .step_by(self.n_cols.max(1))
                    .take(self.n_rows),
            ),
        }
    }

    /// Row `r`: borrowed for row-major data, gathered into `buf` for column-major data.
    pub(crate) fn row<'a>(&'a self, r: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
        match self.layout {
            Layout::RowMajor => {
                let start = r.saturating_mul(self.n_cols);
                let end = start.saturating_add(self.n_cols);
                self.values.get(start..end).unwrap_or(&[])
            }
            Layout::ColMajor => {
                buf.clear();
                buf.extend(
                    self.values
                        .iter()
                        .skip(r)
                        .step_by(self.n_rows.max(1))
                        .take(self.n_cols),
                );
                buf
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rows_and_columns_agree_across_layouts() {
        let rm = DMatrix::from_row_major(vec![1., 2., 3., 4., 5., 6.], 2, 3).unwrap();
        let cm = DMatrix::from_col_major(vec![1., 4., 2., 5., 3., 6.], 2, 3).unwrap();
        let (mut b1, mut b2) = (Vec::new(), Vec::new());
        assert_eq!(rm.row(1, &mut b1), cm.row(1, &mut b2));
        rm.column_into(2, &mut b1);
        cm.column_into(2, &mut b2);
        assert_eq!(b1, vec![3., 6.]);
        assert_eq!(b1, b2);
    }

    #[test]
    fn refuses_bad_shapes_and_values() {
        assert!(DMatrix::from_row_major(vec![1.0; 5], 2, 3).is_err());
        assert!(DMatrix::from_row_major(vec![f32::INFINITY], 1, 1).is_err());
        let m = DMatrix::from_row_major(vec![1.0; 2], 2, 1).unwrap();
        assert!(m.clone().with_labels(vec![1.0]).is_err());
        assert!(m.clone().with_weights(vec![1.0, -1.0]).is_err());
        assert!(m.with_labels(vec![f32::NAN, 0.0]).is_err());
    }
}
