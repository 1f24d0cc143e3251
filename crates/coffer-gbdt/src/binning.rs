//! Quantile binning as XGBoost's `hist`: a weighted quantile summary per feature, pruned twice
//! (to `8 * max_bin`, then to `max_bin + 1` entries) with XGBoost's `SetPrune`, then turned into
//! cut points. For data small enough that XGBoost's sketch is exact the cuts are identical.

use rayon::prelude::*;

use crate::data::DMatrix;
use crate::error::{GbdtError, Result};

/// XGBoost's `WQSketch::kFactor`.
const SKETCH_FACTOR: usize = 8;

/// Cut points per feature: bin `i` of feature `f` holds values `v` with
/// `cuts[i - 1] <= v < cuts[i]`; the last cut is above the feature's maximum.
#[derive(Debug, Clone, PartialEq)]
pub struct Cuts {
    ptrs: Vec<usize>,
    values: Vec<f32>,
    min_values: Vec<f32>,
}

/// One entry of a weighted quantile summary (XGBoost's `WQSummary::Entry`, `float` ranks).
#[derive(Debug, Clone, Copy)]
struct Entry {
    rmin: f32,
    rmax: f32,
    wmin: f32,
    value: f32,
}

impl Entry {
    fn rmin_next(self) -> f32 {
        self.rmin + self.wmin
    }
    fn rmax_prev(self) -> f32 {
        self.rmax - self.wmin
    }
}

impl Cuts {
    /// Cuts for every column of `m`, weighted by its weights.
    pub fn build(m: &DMatrix, max_bin: usize) -> Result<Self> {
        if max_bin < 2 {
            return Err(GbdtError::InvalidData("max_bin must be at least 2".into()));
        }
        let per_feature: Vec<(Vec<f32>, f32)> = (0..m.n_cols())
            .into_par_iter()
            .map(|c| {
                let mut col = Vec::new();
                m.column_into(c, &mut col);
                feature_cuts(&col, |r| m.weight(r), max_bin)
            })
            .collect();
        let mut ptrs = Vec::with_capacity(per_feature.len().saturating_add(1));
        let mut values = Vec::new();
        let mut min_values = Vec::with_capacity(per_feature.len());
        ptrs.push(0);
        for (cuts, min) in per_feature {
            values.extend_from_slice(&cuts);
            ptrs.push(values.len());
            min_values.push(min);
        }
        Ok(Self {
            ptrs,
            values,
            min_values,
        })
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.min_values.len()
    }

    /// Cut values of feature `f` (empty if out of range).
    pub fn feature(&self, f: usize) -> &[f32] {
        match (self.ptrs.get(f), self.ptrs.get(f.saturating_add(1))) {
            (Some(&a), Some(&b)) => self.values.get(a..b).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// XGBoost's per-feature minimum: below every value, the split condition that sends only
    /// missing values left.
    pub fn min_value(&self, f: usize) -> f32 {
        self.min_values.get(f).copied().unwrap_or(0.0)
    }

    /// The bin of `v` for feature `f`: the first cut above `v`, clamped to the last bin.
    pub fn search_bin(&self, f: usize, v: f32) -> usize {
        let cuts = self.feature(f);
        let i = cuts.partition_point(|c| *c <= v);
        i.min(cuts.len().saturating_sub(1))
    }
}

/// Cut values and the minimum for one column.
fn feature_cuts(col: &[f32], weight: impl Fn(usize) -> f32, max_bin: usize) -> (Vec<f32>, f32) {
    let mut pairs: Vec<(f32, f32)> = col
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(r, v)| (*v, weight(r)))
        .collect();
    let column_size = pairs.len();
    if column_size == 0 {
        let min = 1e-5f32;
        return (vec![min + (min.abs() + 1e-5)], min);
    }
    radix_sort(&mut pairs);
    // XGBoost's sketch first prunes its input to the sketch's level size; for data that fits
    // one input queue (up to twice that size) this reproduces XGBoost's cuts exactly.
    let summary = set_prune(
        &exact_summary(&pairs),
        sketch_limit_size(column_size, max_bin),
    );
    let intermediate = column_size.min(max_bin.saturating_mul(SKETCH_FACTOR));
    let reduced = set_prune(&summary, intermediate);
    let max_num_bins = intermediate.min(max_bin);
    let fin = set_prune(&reduced, max_num_bins.saturating_add(1));
    let first = fin.first().map_or(0.0, |e| e.value);
    let min = first - first.abs() - 1e-5;
    let required = fin.len().min(max_num_bins);
    let mut cuts: Vec<f32> = Vec::with_capacity(required.saturating_add(1));
    for e in fin.iter().take(required).skip(1) {
        if cuts.last().is_none_or(|last| e.value > *last) {
            cuts.push(e.value);
        }
    }
    let top = fin.last().map_or(min, |e| e.value);
    cuts.push((f64::from(top) + (f64::from(top.abs()) + f64::from(1e-5f32))) as f32);
    (cuts, min)
}

/// XGBoost's `WQuantileSketch::LimitSizeLevel` for a column of `n` values.
fn sketch_limit_size(n: usize, max_bin: usize) -> usize {
    let n_bins = max_bin.min(n).max(1);
    let eps = 1.0 / (n_bins as f64 * SKETCH_FACTOR as f64);
    let mut nlevel = 1u32;
    loop {
        let limit = (f64::from(nlevel) / eps).ceil() as usize;
        let limit = limit.saturating_add(1);
        let levels = 1usize.checked_shl(nlevel).unwrap_or(usize::MAX);
        if levels.saturating_mul(limit) >= n || nlevel >= 62 {
            return limit;
        }
        nlevel = nlevel.saturating_add(1);
    }
}

/// A `u32` whose order is the order of the (non-NaN) `f32`.
fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Sorts `(value, weight)` pairs by value: an LSD radix sort on the value's bits, several times
/// faster than a comparison sort on the million-row columns the trainer bins.
fn radix_sort(pairs: &mut Vec<(f32, f32)>) {
    if pairs.len() < 4096 {
        pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        return;
    }
    let mut src = std::mem::take(pairs);
    let mut dst = vec![(0f32, 0f32); src.len()];
    for shift in [0u32, 8, 16, 24] {
        let digit = |p: &(f32, f32)| ((order_key(p.0) >> shift) & 0xff) as usize;
        let mut counts = [0usize; 256];
        for p in &src {
            if let Some(c) = counts.get_mut(digit(p)) {
                *c = c.saturating_add(1);
            }
        }
        if counts.contains(&src.len()) {
            continue; // every key has this digit: the pass would not move anything
        }
        let mut offsets = [0usize; 256];
        let mut total = 0usize;
        for (o, c) in offsets.iter_mut().zip(counts) {
            *o = total;
            total = total.saturating_add(c);
        }
        for p in &src {
            if let Some(o) = offsets.get_mut(digit(p)) {
                if let Some(d) = dst.get_mut(*o) {
                    *d = *p;
                }
                *o = o.saturating_add(1);
            }
        }
        std::mem::swap(&mut src, &mut dst);
    }
    *pairs = src;
}

/// The exact summary of sorted `(value, weight)` pairs: one entry per distinct value.
fn exact_summary(sorted: &[(f32, f32)]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut rank = 0f32;
    let mut i = 0usize;
    while let Some(&(value, _)) = sorted.get(i) {
        let mut w = 0f32;
        while let Some(&(v, wt)) = sorted.get(i) {
            if v != value {
                break;
            }
            w += wt;
            i = i.saturating_add(1);
        }
        out.push(Entry {
            rmin: rank,
            rmax: rank + w,
            wmin: w,
            value,
        });
        rank += w;
    }
    out
}

/// XGBoost's `WQSummary::SetPrune`: keep at most `maxsize` entries at evenly spaced ranks.
fn set_prune(src: &[Entry], maxsize: usize) -> Vec<Entry> {
    if src.len() <= maxsize || maxsize < 2 {
        return src.to_vec();
    }
    let (Some(&first), Some(&last)) = (src.first(), src.last()) else {
        return Vec::new();
    };
    let last_idx = src.len().saturating_sub(1);
    let begin = first.rmax;
    let range = last.rmin - first.rmax;
    let n = maxsize.saturating_sub(1);
    let mut out = Vec::with_capacity(maxsize);
    out.push(first);
    let (mut i, mut lastidx) = (1usize, 0usize);
    let at = |j: usize| src.get(j).copied().unwrap_or(last);
    for k in 1..n {
        let dx2 = 2.0 * ((k as f32 * range) / n as f32 + begin);
        while i < last_idx && dx2 >= at(i.saturating_add(1)).rmax + at(i.saturating_add(1)).rmin {
            i = i.saturating_add(1);
        }
        if i == last_idx {
            break;
        }
        let next = i.saturating_add(1);
        if dx2 < at(i).rmin_next() + at(next).rmax_prev() {
            if i != lastidx {
                out.push(at(i));
                lastidx = i;
            }
        } else if next != lastidx {
            out.push(at(next));
            lastidx = next;
        }
    }
    if lastidx != last_idx {
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn cuts_of(col: &[f32], max_bin: usize) -> (Vec<f32>, f32) {
        feature_cuts(col, |_| 1.0, max_bin)
    }

    #[test]
    fn few_distinct_values_are_their_own_cuts() {
        let (cuts, min) = cuts_of(&[3.0, 1.0, 2.0, 2.0, f32::NAN, 1.0], 256);
        assert_eq!(cuts, vec![2.0, 3.0, 3.0 + 3.0 + 1e-5]);
        assert_eq!(min, 1.0 - 1.0 - 1e-5);
    }

    #[test]
    fn many_values_give_max_bin_cuts_at_quantiles() {
        let col: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let (cuts, _) = cuts_of(&col, 16);
        assert_eq!(cuts.len(), 16);
        assert!(cuts.windows(2).all(|w| w[0] < w[1]));
        // Evenly spaced ranks: each bin holds about 10000 / 16 values.
        let widths: Vec<f32> = cuts.windows(2).take(14).map(|w| w[1] - w[0]).collect();
        assert!(
            widths.iter().all(|w| (*w - 625.0).abs() < 100.0),
            "{widths:?}"
        );
        assert!(*cuts.last().unwrap() > 9999.0);
    }

    #[test]
    fn radix_sort_orders_like_a_comparison_sort() {
        let mut v: Vec<(f32, f32)> = (0..10_000u32)
            .map(|i| {
                let x = ((i.wrapping_mul(2_654_435_761)) % 20_001) as f32 - 10_000.0;
                (x / 7.0, i as f32)
            })
            .chain([(0.0, 1.0), (-0.0, 2.0), (f32::MAX, 3.0), (-f32::MAX, 4.0)])
            .collect();
        let mut expected = v.clone();
        expected.sort_by(|a, b| a.0.total_cmp(&b.0));
        radix_sort(&mut v);
        assert_eq!(v, expected);
    }

    #[test]
    fn all_missing_column_has_one_bin() {
        let (cuts, min) = cuts_of(&[f32::NAN, f32::NAN], 256);
        assert_eq!(cuts.len(), 1);
        assert_eq!(min, 1e-5);
    }

    #[test]
    fn search_bin_matches_split_rule() {
        let m = DMatrix::from_row_major(vec![1.0, 2.0, 3.0, 4.0], 4, 1).unwrap();
        let c = Cuts::build(&m, 256).unwrap();
        // value < cuts[i] <=> bin <= i
        for v in [0.5f32, 1.0, 1.5, 2.0, 3.9, 4.0, 100.0] {
            let b = c.search_bin(0, v);
            for (i, cut) in c.feature(0).iter().enumerate() {
                if b < c.feature(0).len() - 1 || v < *cut {
                    assert_eq!(v < *cut, b <= i, "v={v} i={i}");
                }
            }
        }
    }
}
