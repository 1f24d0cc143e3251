//! Evaluation metrics with XGBoost's definitions (weighted).

use crate::params::Metric;

const EPS: f64 = 1e-16;

/// Evaluates `metric` on transformed predictions (`k` per row for multi-class, row-major).
/// Returns NaN where XGBoost's value is undefined (AUC with one class only).
pub fn evaluate(
    metric: Metric,
    preds: &[f32],
    k: usize,
    labels: &[f32],
    weights: Option<&[f32]>,
) -> f64 {
    let w = |i: usize| {
        weights
            .and_then(|w| w.get(i))
            .map_or(1.0, |w| f64::from(*w))
    };
    let total: f64 = (0..labels.len()).map(w).sum();
    let mean = |f: &dyn Fn(usize, f64) -> f64| {
        let s: f64 = labels
            .iter()
            .enumerate()
            .map(|(i, y)| w(i) * f(i, f64::from(*y)))
            .sum();
        s / total
    };
    let p = |i: usize| preds.get(i).map_or(f64::NAN, |p| f64::from(*p));
    match metric {
        Metric::Rmse => mean(&|i, y| (y - p(i)).powi(2)).sqrt(),
        Metric::LogLoss => mean(&|i, y| {
            let pi = p(i).clamp(EPS, 1.0 - EPS);
            -(y * pi.ln() + (1.0 - y) * (1.0 - pi).ln())
        }),
        Metric::MLogLoss => mean(&|i, y| {
            let pi = p(i.saturating_mul(k).saturating_add(y as usize));
            -pi.max(EPS).ln()
        }),
        Metric::MError => mean(&|i, y| {
            let row = preds
                .get(i.saturating_mul(k)..i.saturating_mul(k).saturating_add(k))
                .unwrap_or(&[]);
            let arg = row
                .iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |best, (c, v)| {
                    if *v > best.1 { (c, *v) } else { best }
                })
                .0;
            if arg == y as usize { 0.0 } else { 1.0 }
        }),
        Metric::Auc => auc(preds, labels, &w),
    }
}

/// Weighted ROC AUC, ties counted as half (trapezoids).
fn auc(preds: &[f32], labels: &[f32], w: &dyn Fn(usize) -> f64) -> f64 {
    let mut order: Vec<usize> = (0..labels.len().min(preds.len())).collect();
    order.sort_by(|a, b| {
        let (pa, pb) = (preds.get(*a).copied(), preds.get(*b).copied());
        pb.unwrap_or(0.0).total_cmp(&pa.unwrap_or(0.0))
    });
    let (mut tp, mut fp, mut area) = (0f64, 0f64, 0f64);
    let mut i = 0usize;
    while let Some(&first) = order.get(i) {
        let score = preds.get(first).copied();
        let (tp0, fp0) = (tp, fp);
        while let Some(&j) = order.get(i) {
            if preds.get(j).copied() != score {
                break;
            }
            let y = f64::from(labels.get(j).copied().unwrap_or(0.0));
            tp += w(j) * y;
            fp += w(j) * (1.0 - y);
            i = i.saturating_add(1);
        }
        area += (fp - fp0) * (tp + tp0) / 2.0;
    }
    if tp <= 0.0 || fp <= 0.0 {
        return f64::NAN;
    }
    area / (tp * fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_small_examples() {
        let y = [1.0, 0.0, 1.0, 0.0];
        assert_eq!(
            evaluate(Metric::Auc, &[0.9, 0.1, 0.8, 0.3], 1, &y, None),
            1.0
        );
        assert_eq!(
            evaluate(Metric::Auc, &[0.1, 0.9, 0.2, 0.8], 1, &y, None),
            0.0
        );
        // One tie between a positive and a negative counts half.
        assert_eq!(
            evaluate(Metric::Auc, &[0.9, 0.5, 0.5, 0.1], 1, &y, None),
            0.875
        );
        let rmse = evaluate(Metric::Rmse, &[1.0, 1.0, 1.0, 1.0], 1, &y, None);
        assert!((rmse - 0.5f64.sqrt()).abs() < 1e-12);
        let ll = evaluate(Metric::LogLoss, &[0.5; 4], 1, &y, None);
        assert!((ll - 2f64.ln()).abs() < 1e-12);
        let w = [1.0, 3.0, 1.0, 1.0];
        let rmse_w = evaluate(Metric::Rmse, &[1.0; 4], 1, &y, Some(&w));
        assert!((rmse_w - (4.0f64 / 6.0).sqrt()).abs() < 1e-12);
        let probs = [0.7, 0.2, 0.1, 0.1, 0.1, 0.8];
        let ym = [0.0, 1.0];
        assert_eq!(evaluate(Metric::MError, &probs, 3, &ym, None), 0.5);
        let ml = evaluate(Metric::MLogLoss, &probs, 3, &ym, None);
        assert!((ml - (-(0.7f64.ln()) - 0.1f64.ln()) / 2.0).abs() < 1e-6);
    }
}
