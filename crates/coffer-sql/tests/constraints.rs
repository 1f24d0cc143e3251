//! `min_group_size` against a direct computation, over many group sizes and bounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_sql::constraints::{apply_constraints, plan_constrained, plan_query};
use coffer_sql::{OutputConstraints, SqlError, run_constrained};
use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// A table `t(g, x)` where group `g` has `sizes[g]` rows, with `x` = 1, 2, ….
fn context(sizes: &[i64]) -> SessionContext {
    let (mut g, mut x) = (Vec::new(), Vec::new());
    for (group, &n) in sizes.iter().enumerate() {
        for i in 0..n {
            g.push(group as i64);
            x.push(i + 1);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("x", DataType::Int64, false),
    ]));
    // Two partitions, so aggregation runs in parallel as it would over files.
    let half = g.len() / 2;
    let batch = |from: usize, to: usize| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(g[from..to].to_vec())),
                Arc::new(Int64Array::from(x[from..to].to_vec())),
            ],
        )
        .unwrap()
    };
    let table = MemTable::try_new(
        schema.clone(),
        vec![vec![batch(0, half)], vec![batch(half, g.len())]],
    )
    .unwrap();
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(table)).unwrap();
    ctx
}

/// Rows of two Int64 columns, sorted.
fn pairs(batches: &[RecordBatch]) -> Vec<(i64, i64)> {
    let mut rows = Vec::new();
    for b in batches {
        assert_eq!(b.num_columns(), 2, "{:?}", b.schema());
        let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let c = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for r in 0..b.num_rows() {
            rows.push((a.value(r), c.value(r)));
        }
    }
    rows.sort();
    rows
}

fn k(n: u64) -> OutputConstraints {
    OutputConstraints::none().with_min_group_size(Some(n))
}

#[tokio::test]
async fn suppression_matches_a_direct_computation() {
    // Sizes 1..=9 in a scrambled order, some repeated.
    let sizes: Vec<i64> = (0..23).map(|i| (i * 7 % 9) + 1).collect();
    let ctx = context(&sizes);
    for min in 0..=10u64 {
        // The query outputs the sum, not the count: suppression must not rely on it.
        let got = run_constrained(&ctx, "SELECT g, sum(x) FROM t GROUP BY g", &[], &k(min))
            .await
            .unwrap();
        let want: Vec<(i64, i64)> = sizes
            .iter()
            .enumerate()
            .filter(|(_, n)| **n as u64 >= min)
            .map(|(g, n)| (g as i64, n * (n + 1) / 2))
            .collect();
        assert_eq!(pairs(&got), want, "min_group_size {min}");
    }
}

#[tokio::test]
async fn the_rewritten_plan_has_the_query_columns_and_a_hidden_count() {
    let ctx = context(&[3, 1]);
    let sql = "SELECT g AS group_id, count(*) AS n FROM t GROUP BY g";
    let plain = plan_query(&ctx, sql).await.unwrap();
    let constrained = apply_constraints(plain.clone(), &k(2)).unwrap();
    assert_eq!(plain.schema(), constrained.schema());
    let text = constrained.display_indent().to_string();
    assert!(text.contains("__coffer_group_rows >= Int64(2)"), "{text}");
    // No constraint: the plan is untouched.
    assert_eq!(
        apply_constraints(plain.clone(), &OutputConstraints::none()).unwrap(),
        plain
    );
}

#[tokio::test]
async fn named_parameters_bind_as_values() {
    let ctx = context(&[3, 1, 4]);
    let sql = "SELECT g, count(*) FROM t WHERE x <= $top GROUP BY g";
    let params = vec![("top".to_owned(), ScalarValue::Int64(Some(2)))];
    let got = run_constrained(&ctx, sql, &params, &k(2)).await.unwrap();
    assert_eq!(pairs(&got), vec![(0, 2), (2, 2)]);
    // Through a template: the declared type is checked before binding.
    let declared = BTreeMap::from([("top".to_owned(), serde_json::json!({"type": "int64"}))]);
    let given = BTreeMap::from([("top".to_owned(), serde_json::json!(1))]);
    let bound = coffer_sql::bind_template(sql, &declared, &given).unwrap();
    let got = run_constrained(&ctx, &bound.sql, &bound.params, &k(1))
        .await
        .unwrap();
    assert_eq!(pairs(&got), vec![(0, 1), (1, 1), (2, 1)]);
}

#[tokio::test]
async fn refusals_carry_their_check_names() {
    let ctx = context(&[3, 1]);
    let cases: [(&str, OutputConstraints, &str); 5] = [
        ("SELECT g, x FROM t", k(2), "not_an_aggregate"),
        ("DELETE FROM t", OutputConstraints::none(), "not_a_query"),
        ("", OutputConstraints::none(), "not_a_query"),
        ("SELECT sum(x) FROM t WHERE g = 1", k(2), "group_too_small"),
        (
            "SELECT g FROM t WHERE x = $x GROUP BY g",
            k(2),
            "bad_template",
        ),
    ];
    for (sql, constraints, check) in cases {
        let err = run_constrained(&ctx, sql, &[], &constraints)
            .await
            .unwrap_err();
        assert_eq!(err.check(), Some(check), "{sql}: {err}");
        assert!(err.to_string().starts_with(check), "{err}");
    }
    // Planning succeeds for the global aggregate: the refusal comes from its row count.
    plan_constrained(&ctx, "SELECT sum(x) FROM t WHERE g = 1", &[], &k(2))
        .await
        .unwrap();
    // An engine error is not a policy refusal.
    let err = run_constrained(&ctx, "SELECT nope FROM t", &[], &OutputConstraints::none())
        .await
        .unwrap_err();
    assert!(matches!(err, SqlError::DataFusion(_)), "{err}");
    assert_eq!(err.check(), None);
}

#[tokio::test]
async fn a_global_aggregate_over_enough_rows_passes() {
    let ctx = context(&[3, 1]);
    let got = run_constrained(&ctx, "SELECT count(*), sum(x) FROM t", &[], &k(4))
        .await
        .unwrap();
    assert_eq!(pairs(&got), vec![(4, 7)]);
}

/// Issue 12: a group of `k` identical rows is one contributor, not `k`.
#[tokio::test]
async fn duplicated_rows_count_once() {
    let ctx = context(&[]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("x", DataType::Int64, false),
    ]));
    // Group 0: five copies of one row; group 1: three distinct rows.
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![0, 0, 0, 0, 0, 1, 1, 1])),
            Arc::new(Int64Array::from(vec![7, 7, 7, 7, 7, 1, 2, 3])),
        ],
    )
    .unwrap();
    let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
    ctx.register_table("d", Arc::new(table)).unwrap();
    let sql = "SELECT g, count(*) FROM d GROUP BY g";
    assert_eq!(
        pairs(&run_constrained(&ctx, sql, &[], &k(3)).await.unwrap()),
        vec![(1, 3)]
    );
    // Counted by a privacy unit, group 1's three rows are three people only if `x` says so.
    let by_g = k(2).with_privacy_unit("d", "g");
    assert_eq!(
        pairs(&run_constrained(&ctx, sql, &[], &by_g).await.unwrap()),
        Vec::<(i64, i64)>::new()
    );
}
