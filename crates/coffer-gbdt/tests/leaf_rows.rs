//! Issue 12: `min_leaf_rows` (a manifest's `min_group_size` on `gbdt_train`) is a row floor on
//! every leaf of every tree, whatever the data or the other parameters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use coffer_gbdt::{DMatrix, GbdtError, Objective, Params, synth};

/// Rows per leaf of each tree, counted by routing every training row.
fn leaf_counts(booster: &coffer_gbdt::Booster, values: &[f32], n_cols: usize) -> Vec<Vec<usize>> {
    booster
        .trees()
        .iter()
        .map(|tree| {
            let mut counts = vec![0usize; tree.nodes().len()];
            for row in values.chunks(n_cols) {
                counts[tree.leaf_index(row)] += 1;
            }
            tree.nodes()
                .iter()
                .zip(counts)
                .filter(|(node, _)| node.is_leaf())
                .map(|(_, n)| n)
                .collect()
        })
        .collect()
}

fn train(objective: Objective, k: u64, subsample: f32) -> (Vec<Vec<usize>>, usize) {
    let (rows, cols) = (3_000, 6);
    let (values, labels) = synth::higgs_like(rows, cols, 7);
    let m = DMatrix::from_row_major(values.clone(), rows, cols)
        .unwrap()
        .with_labels(labels)
        .unwrap();
    let params = Params {
        objective,
        max_depth: 8,
        min_child_weight: 0.0,
        num_boost_round: 8,
        subsample,
        min_leaf_rows: k,
        ..Params::default()
    };
    let booster = coffer_gbdt::train(&params, &m, &[]).unwrap();
    (leaf_counts(&booster, &values, cols), rows)
}

#[test]
fn every_leaf_covers_at_least_k_rows() {
    for objective in [Objective::SquaredError, Objective::BinaryLogistic] {
        // Without the floor, deep trees with no min_child_weight make tiny leaves.
        let (free, _) = train(objective, 0, 1.0);
        let smallest = free.iter().flatten().copied().min().unwrap();
        assert!(
            smallest < 50,
            "{objective:?}: no leaf under 50 rows ({smallest})"
        );
        for (k, subsample) in [(50u64, 1.0f32), (200, 1.0), (50, 0.5)] {
            let (trees, _) = train(objective, k, subsample);
            for (t, leaves) in trees.iter().enumerate() {
                for n in leaves {
                    assert!(
                        *n as u64 >= k,
                        "{objective:?} k={k} tree {t}: a leaf of {n} rows"
                    );
                }
            }
        }
    }
}

#[test]
fn a_training_set_smaller_than_k_is_refused() {
    let (values, labels) = synth::higgs_like(40, 3, 1);
    let m = DMatrix::from_row_major(values, 40, 3)
        .unwrap()
        .with_labels(labels)
        .unwrap();
    let params = Params {
        min_leaf_rows: 41,
        ..Params::default()
    };
    let err = coffer_gbdt::train(&params, &m, &[]).unwrap_err();
    assert!(
        matches!(err, GbdtError::GroupTooSmall { min_leaf_rows: 41 }),
        "{err}"
    );
    assert!(err.to_string().starts_with("group_too_small"), "{err}");
    let exact = Params {
        min_leaf_rows: 40,
        ..Params::default()
    };
    coffer_gbdt::train(&exact, &m, &[]).unwrap();
}
