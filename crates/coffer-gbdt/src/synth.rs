//! Deterministic HIGGS-like synthetic data for benchmarks and examples: dense `f32` features,
//! some Gaussian, some positive and skewed like momenta, and a binary label from a noisy
//! non-linear score, so boosted trees reach an AUC around 0.8 as on HIGGS.

use rayon::prelude::*;

use crate::rng::Rng;

/// `rows x features` row-major values and `rows` 0/1 labels, a pure function of the arguments
/// (rows are generated in fixed blocks with per-block seeds, in parallel).
pub fn higgs_like(rows: usize, features: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    const BLOCK: usize = 8192;
    let nf = features.max(1);
    let blocks: Vec<(Vec<f32>, Vec<f32>)> = (0..rows.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let mut rng = Rng::new(seed ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let start = b.saturating_mul(BLOCK);
            let n = BLOCK.min(rows.saturating_sub(start));
            let mut x = Vec::with_capacity(n.saturating_mul(nf));
            let mut y = Vec::with_capacity(n);
            let mut z = vec![0f64; nf];
            for _ in 0..n {
                for v in z.iter_mut() {
                    *v = normal(&mut rng);
                }
                let at = |i: usize| {
                    z.get(i.checked_rem(nf).unwrap_or(0))
                        .copied()
                        .unwrap_or(0.0)
                };
                let score = 0.8 * at(0) - 0.6 * at(1)
                    + 0.9 * at(2) * at(3)
                    + 0.7 * (at(4) * at(4) - 1.0)
                    + 0.8 * at(5).sin() * at(6)
                    + 0.5 * (at(7).abs() - 0.8)
                    - 0.4 * at(8) * at(9).abs()
                    + 0.3 * normal(&mut rng);
                let p = 1.0 / (1.0 + (-score).exp());
                y.push(if rng.next_f64() < p { 1.0 } else { 0.0 });
                for (j, v) in z.iter().enumerate() {
                    // Every third feature is a positive, skewed "momentum".
                    let out = if j.checked_rem(3) == Some(2) {
                        (0.5 * v).exp()
                    } else {
                        *v
                    };
                    x.push(out as f32);
                }
            }
            (x, y)
        })
        .collect();
    let mut x = Vec::with_capacity(rows.saturating_mul(nf));
    let mut y = Vec::with_capacity(rows);
    for (bx, by) in blocks {
        x.extend_from_slice(&bx);
        y.extend_from_slice(&by);
    }
    (x, y)
}

fn normal(rng: &mut Rng) -> f64 {
    let u = rng.next_f64().max(1e-300);
    let v = rng.next_f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_balanced() {
        let (x1, y1) = higgs_like(10_000, 28, 1);
        let (x2, y2) = higgs_like(10_000, 28, 1);
        assert_eq!((x1.len(), y1.len()), (280_000, 10_000));
        assert!(x1 == x2 && y1 == y2);
        let pos = y1.iter().filter(|v| **v == 1.0).count();
        assert!((3_000..7_000).contains(&pos), "{pos}");
        assert_ne!(higgs_like(100, 28, 2).1, higgs_like(100, 28, 1).1);
    }
}
