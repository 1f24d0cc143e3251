//! Split gain and leaf weight, exactly as XGBoost's `param.h` (`CalcGain`, `CalcWeight`,
//! `ThresholdL1`) and split enumeration as its `HistEvaluator::EnumerateSplit`.

use crate::params::Params;

/// XGBoost's `kRtEps`: a split must gain more than this.
pub(crate) const RT_EPS: f32 = 1e-6;

/// Gradient and hessian sums, in `f64` as XGBoost's CPU histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stat {
    /// Sum of gradients.
    pub g: f64,
    /// Sum of hessians.
    pub h: f64,
    /// Number of rows (unweighted): the `min_leaf_rows` floor is on this.
    pub n: f64,
}

impl Stat {
    pub(crate) fn add(&mut self, o: Stat) {
        self.g += o.g;
        self.h += o.h;
        self.n += o.n;
    }
    pub(crate) fn sub(self, o: Stat) -> Stat {
        Stat {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }
}

/// The regularisation parameters the formulas use, as `f64` values of XGBoost's `f32` params.
#[derive(Debug, Clone, Copy)]
pub struct SplitParams {
    /// `lambda`.
    pub lambda: f64,
    /// `alpha`.
    pub alpha: f64,
    /// `min_child_weight`.
    pub min_child_weight: f64,
    /// `min_leaf_rows`: fewest rows a child may have.
    pub min_rows: f64,
}

impl From<&Params> for SplitParams {
    fn from(p: &Params) -> Self {
        Self {
            lambda: f64::from(p.lambda),
            alpha: f64::from(p.alpha),
            min_child_weight: f64::from(p.min_child_weight),
            min_rows: p.min_leaf_rows as f64,
        }
    }
}

/// Soft thresholding by the L1 penalty.
pub fn threshold_l1(w: f64, alpha: f64) -> f64 {
    if w > alpha {
        w - alpha
    } else if w < -alpha {
        w + alpha
    } else {
        0.0
    }
}

/// The structure score of a node: `ThresholdL1(G, alpha)^2 / (H + lambda)`, 0 when the hessian
/// sum is below `min_child_weight`.
pub fn calc_gain(p: &SplitParams, s: Stat) -> f64 {
    if s.h < p.min_child_weight || s.h <= 0.0 {
        return 0.0;
    }
    let g = if p.alpha == 0.0 {
        s.g
    } else {
        threshold_l1(s.g, p.alpha)
    };
    g * g / (s.h + p.lambda)
}

/// The optimal leaf weight: `-ThresholdL1(G, alpha) / (H + lambda)`, 0 below
/// `min_child_weight`.
pub fn calc_weight(p: &SplitParams, s: Stat) -> f64 {
    if s.h < p.min_child_weight || s.h <= 0.0 {
        return 0.0;
    }
    -threshold_l1(s.g, p.alpha) / (s.h + p.lambda)
}

/// The best split found so far for a node (XGBoost's `SplitEntry`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub loss_chg: f32,
    pub feature: usize,
    pub cond: f32,
    pub default_left: bool,
    /// Bins `<= left_max_bin` go left; `-1`: no non-missing bin does.
    pub left_max_bin: i64,
    pub left: Stat,
    pub right: Stat,
}

impl Candidate {
    pub(crate) fn none() -> Self {
        Self {
            loss_chg: 0.0,
            feature: 0,
            cond: 0.0,
            default_left: false,
            left_max_bin: -1,
            left: Stat::default(),
            right: Stat::default(),
        }
    }

    /// XGBoost's `SplitEntry::NeedReplace`: on equal gain the lower feature index wins.
    fn need_replace(&self, loss_chg: f32, feature: usize) -> bool {
        if loss_chg.is_infinite() {
            false
        } else if self.feature <= feature {
            loss_chg > self.loss_chg
        } else {
            self.loss_chg.partial_cmp(&loss_chg) != Some(std::cmp::Ordering::Greater)
        }
    }

    fn update(&mut self, new: Candidate) {
        if self.need_replace(new.loss_chg, new.feature) {
            *self = new;
        }
    }
}

/// One feature's histogram and cuts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeatureHist<'a> {
    pub feature: usize,
    /// One slot per bin, then the missing slot.
    pub hist: &'a [Stat],
    pub cuts: &'a [f32],
    pub min_value: f32,
}

/// Enumerates the splits of one feature over its histogram (`hist` has one slot per bin plus a
/// trailing missing slot), forward (missing right) and, when the node has missing values for
/// this feature, backward (missing left).
pub(crate) fn evaluate_feature(
    p: &SplitParams,
    f: FeatureHist<'_>,
    parent: Stat,
    parent_gain: f64,
    best: &mut Candidate,
) {
    let FeatureHist {
        feature,
        hist,
        cuts,
        min_value,
    } = f;
    let n_bins = cuts.len().min(hist.len());
    let valid = |a: Stat, b: Stat| {
        a.h >= p.min_child_weight
            && b.h >= p.min_child_weight
            && a.n >= p.min_rows
            && b.n >= p.min_rows
    };
    let mut left = Stat::default();
    for (i, (s, cut)) in hist.iter().zip(cuts).take(n_bins).enumerate() {
        left.add(*s);
        let right = parent.sub(left);
        if valid(left, right) {
            let loss_chg = (calc_gain(p, left) + calc_gain(p, right) - parent_gain) as f32;
            best.update(Candidate {
                loss_chg,
                feature,
                cond: *cut,
                default_left: false,
                left_max_bin: i as i64,
                left,
                right,
            });
        }
    }
    // XGBoost's `SplitContainsMissingValues`; our histograms count missing values in their own
    // slot, so the test is exact rather than a comparison of rounded sums.
    let missing = hist.get(n_bins).is_some_and(|s| s.h != 0.0 || s.g != 0.0);
    if !missing {
        return;
    }
    let mut right = Stat::default();
    for i in (0..n_bins).rev() {
        right.add(hist.get(i).copied().unwrap_or_default());
        let left = parent.sub(right);
        if valid(right, left) {
            let loss_chg = (calc_gain(p, right) + calc_gain(p, left) - parent_gain) as f32;
            let cond = match i.checked_sub(1) {
                Some(j) => cuts.get(j).copied().unwrap_or(min_value),
                None => min_value,
            };
            best.update(Candidate {
                loss_chg,
                feature,
                cond,
                default_left: true,
                left_max_bin: (i as i64).saturating_sub(1),
                left,
                right,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const P: SplitParams = SplitParams {
        lambda: 1.0,
        alpha: 0.0,
        min_child_weight: 1.0,
        min_rows: 0.0,
    };

    #[test]
    fn gain_and_weight_match_xgboost_formulas() {
        let s = Stat {
            g: -4.0,
            h: 3.0,
            n: 0.0,
        };
        assert_eq!(calc_gain(&P, s), 16.0 / 4.0);
        assert_eq!(calc_weight(&P, s), 1.0);
        let l1 = SplitParams { alpha: 1.5, ..P };
        assert_eq!(calc_gain(&l1, s), 2.5 * 2.5 / 4.0);
        assert_eq!(calc_weight(&l1, s), 2.5 / 4.0);
        assert_eq!(
            calc_weight(
                &l1,
                Stat {
                    g: 1.0,
                    h: 3.0,
                    n: 0.0
                }
            ),
            0.0
        );
        assert_eq!(threshold_l1(-3.0, 1.0), -2.0);
        // Below min_child_weight nothing counts.
        assert_eq!(
            calc_gain(
                &P,
                Stat {
                    g: 5.0,
                    h: 0.5,
                    n: 0.0
                }
            ),
            0.0
        );
        assert_eq!(
            calc_weight(
                &P,
                Stat {
                    g: 5.0,
                    h: 0.5,
                    n: 0.0
                }
            ),
            0.0
        );
    }

    #[test]
    fn forward_split_finds_the_separating_bin() {
        // Two bins with opposite gradients and no missing values.
        let hist = [
            Stat {
                g: -5.0,
                h: 5.0,
                n: 0.0,
            },
            Stat {
                g: 5.0,
                h: 5.0,
                n: 0.0,
            },
            Stat::default(),
        ];
        let parent = Stat {
            g: 0.0,
            h: 10.0,
            n: 0.0,
        };
        let mut best = Candidate::none();
        let f = FeatureHist {
            feature: 3,
            hist: &hist,
            cuts: &[1.0, 2.0],
            min_value: 0.0,
        };
        evaluate_feature(&P, f, parent, calc_gain(&P, parent), &mut best);
        assert_eq!(best.feature, 3);
        assert_eq!(best.cond, 1.0);
        assert!(!best.default_left);
        assert_eq!(best.left_max_bin, 0);
        let expected = (25.0 / 6.0) * 2.0;
        assert!((f64::from(best.loss_chg) - expected).abs() < 1e-5);
    }

    #[test]
    fn missing_values_learn_a_default_direction() {
        // The missing slot looks like bin 0: the best split sends missing left with bin 0.
        let hist = [
            Stat {
                g: -5.0,
                h: 5.0,
                n: 0.0,
            },
            Stat {
                g: 5.0,
                h: 5.0,
                n: 0.0,
            },
            Stat {
                g: -4.0,
                h: 4.0,
                n: 0.0,
            },
        ];
        let parent = Stat {
            g: -4.0,
            h: 14.0,
            n: 0.0,
        };
        let mut best = Candidate::none();
        let f = FeatureHist {
            feature: 0,
            hist: &hist,
            cuts: &[1.0, 2.0],
            min_value: -7.0,
        };
        evaluate_feature(&P, f, parent, calc_gain(&P, parent), &mut best);
        assert!(best.default_left);
        assert_eq!(best.cond, 1.0);
        assert_eq!(best.left_max_bin, 0);
        assert_eq!(
            best.left,
            Stat {
                g: -9.0,
                h: 9.0,
                n: 0.0
            }
        );
    }

    #[test]
    fn ties_prefer_the_lower_feature() {
        let mut best = Candidate::none();
        best.update(Candidate {
            loss_chg: 2.0,
            feature: 5,
            ..Candidate::none()
        });
        best.update(Candidate {
            loss_chg: 2.0,
            feature: 2,
            ..Candidate::none()
        });
        assert_eq!(best.feature, 2);
        best.update(Candidate {
            loss_chg: 2.0,
            feature: 7,
            ..Candidate::none()
        });
        assert_eq!(best.feature, 2);
    }
}
