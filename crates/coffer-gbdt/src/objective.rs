//! Gradients, base scores and output transforms of the supported objectives, as XGBoost.

use rayon::prelude::*;

use crate::data::DMatrix;
use crate::error::{GbdtError, Result};
use crate::hist::GradPair;
use crate::params::Objective;

/// XGBoost's floor on hessians (`kRtEps`-style) so leaves never divide by zero.
const MIN_HESS: f32 = 1e-16;

/// Checks labels against the objective.
pub(crate) fn check_labels(obj: Objective, n_groups: usize, labels: &[f32]) -> Result<()> {
    let bad = match obj {
        Objective::SquaredError => None,
        Objective::BinaryLogistic => labels.iter().find(|y| !(0.0..=1.0).contains(*y)),
        Objective::MultiSoftprob => labels
            .iter()
            .find(|y| y.fract() != 0.0 || **y < 0.0 || **y >= n_groups as f32),
    };
    match bad {
        Some(y) => Err(GbdtError::InvalidData(format!(
            "label {y} is out of range for {}",
            obj.name()
        ))),
        None => Ok(()),
    }
}

/// The base score XGBoost 3.x estimates (`boost_from_average`): the weighted label mean for
/// regression and logistic (a probability), centred log class frequencies for softprob.
pub(crate) fn estimate_base_score(obj: Objective, n_groups: usize, m: &DMatrix) -> Vec<f32> {
    let labels = m.labels().unwrap_or(&[]);
    let weight = |r: usize| f64::from(m.weight(r));
    let total: f64 = (0..labels.len()).map(weight).sum();
    match obj {
        Objective::SquaredError | Objective::BinaryLogistic => {
            let s: f64 = labels
                .iter()
                .enumerate()
                .map(|(r, y)| f64::from(*y) * weight(r))
                .sum();
            let mean = if total > 0.0 { s / total } else { 0.5 };
            let mean = if obj == Objective::BinaryLogistic {
                mean.clamp(1e-7, 1.0 - 1e-7)
            } else {
                mean
            };
            vec![mean as f32]
        }
        Objective::MultiSoftprob => {
            let mut counts = vec![0f64; n_groups];
            for (r, y) in labels.iter().enumerate() {
                if let Some(c) = counts.get_mut(*y as usize) {
                    *c += weight(r);
                }
            }
            let logs: Vec<f64> = counts
                .iter()
                .map(|c| (c / total.max(f64::MIN_POSITIVE)).max(1e-16).ln())
                .collect();
            let mean = logs.iter().sum::<f64>() / n_groups.max(1) as f64;
            logs.iter().map(|l| (l - mean) as f32).collect()
        }
    }
}

/// The margin a base score stands for.
pub(crate) fn base_margin(obj: Objective, base_score: f32) -> f32 {
    match obj {
        Objective::BinaryLogistic => (-(1.0 / f64::from(base_score) - 1.0).ln()) as f32,
        _ => base_score,
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Margins (row-major `n x k`) to predictions, in place.
pub(crate) fn transform(obj: Objective, k: usize, margins: &mut [f32]) {
    match obj {
        Objective::SquaredError => {}
        Objective::BinaryLogistic => margins.par_iter_mut().for_each(|m| *m = sigmoid(*m)),
        Objective::MultiSoftprob => margins.par_chunks_mut(k.max(1)).for_each(softmax_in_place),
    }
}

fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Gradient pairs per output group: `out[g][row]`.
pub(crate) fn gradients(
    obj: Objective,
    k: usize,
    m: &DMatrix,
    margins: &[f32],
    out: &mut [Vec<GradPair>],
) {
    let labels = m.labels().unwrap_or(&[]);
    match obj {
        Objective::SquaredError | Objective::BinaryLogistic => {
            let Some(dst) = out.first_mut() else { return };
            dst.par_iter_mut()
                .zip(margins.par_iter())
                .zip(labels.par_iter())
                .enumerate()
                .for_each(|(r, ((gp, margin), y))| {
                    let w = m.weight(r);
                    *gp = if obj == Objective::SquaredError {
                        GradPair {
                            g: (margin - y) * w,
                            h: w,
                        }
                    } else {
                        let p = sigmoid(*margin);
                        GradPair {
                            g: (p - y) * w,
                            h: (p * (1.0 - p)).max(MIN_HESS) * w,
                        }
                    };
                });
        }
        Objective::MultiSoftprob => {
            let rows: Vec<Vec<GradPair>> = margins
                .par_chunks(k.max(1))
                .zip(labels.par_iter())
                .enumerate()
                .map(|(r, (row, y))| {
                    let mut p = row.to_vec();
                    softmax_in_place(&mut p);
                    let w = m.weight(r);
                    p.iter()
                        .enumerate()
                        .map(|(c, pc)| {
                            let target = if c == *y as usize { 1.0 } else { 0.0 };
                            GradPair {
                                g: (pc - target) * w,
                                h: (2.0 * pc * (1.0 - pc)).max(MIN_HESS) * w,
                            }
                        })
                        .collect()
                })
                .collect();
            out.par_iter_mut().enumerate().for_each(|(c, dst)| {
                for (gp, row) in dst.iter_mut().zip(&rows) {
                    *gp = row.get(c).copied().unwrap_or_default();
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn logistic_gradients_and_base_score() {
        let m = DMatrix::from_row_major(vec![0.0; 4], 4, 1)
            .unwrap()
            .with_labels(vec![1.0, 0.0, 1.0, 1.0])
            .unwrap();
        let base = estimate_base_score(Objective::BinaryLogistic, 1, &m);
        assert_eq!(base, vec![0.75]);
        let bm = base_margin(Objective::BinaryLogistic, 0.75);
        assert!((bm - 3f32.ln()).abs() < 1e-6);
        let mut out = vec![vec![GradPair::default(); 4]];
        gradients(Objective::BinaryLogistic, 1, &m, &[0.0; 4], &mut out);
        assert_eq!(out[0][0], GradPair { g: -0.5, h: 0.25 });
        assert_eq!(out[0][1], GradPair { g: 0.5, h: 0.25 });
    }

    #[test]
    fn softprob_gradients_and_centred_log_priors() {
        let m = DMatrix::from_row_major(vec![0.0; 4], 4, 1)
            .unwrap()
            .with_labels(vec![0.0, 1.0, 1.0, 2.0])
            .unwrap();
        let base = estimate_base_score(Objective::MultiSoftprob, 3, &m);
        let l: Vec<f64> = [0.25f64, 0.5, 0.25].iter().map(|p| p.ln()).collect();
        let mean = l.iter().sum::<f64>() / 3.0;
        for (b, li) in base.iter().zip(&l) {
            assert!((f64::from(*b) - (li - mean)).abs() < 1e-6);
        }
        let mut out = vec![vec![GradPair::default(); 4]; 3];
        gradients(Objective::MultiSoftprob, 3, &m, &[0.0; 12], &mut out);
        let third = 1.0f32 / 3.0;
        assert!((out[0][0].g - (third - 1.0)).abs() < 1e-6);
        assert!((out[1][0].g - third).abs() < 1e-6);
        assert!((out[1][0].h - 2.0 * third * (1.0 - third)).abs() < 1e-6);
        assert!(check_labels(Objective::MultiSoftprob, 3, &[3.0]).is_err());
        assert!(check_labels(Objective::MultiSoftprob, 3, &[0.5]).is_err());
    }
}
