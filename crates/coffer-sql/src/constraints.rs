//! Output constraints, enforced by rewriting the query's logical plan.
//!
//! [`run_constrained`] plans one `SELECT` query, binds its parameters as DataFusion placeholders,
//! applies [`OutputConstraints`] to the plan, runs it and collects the result. Anything that is
//! not exactly one `SELECT` (DDL, DML, `COPY`, `SET`, `EXPLAIN`, `SELECT … INTO`, several
//! statements) is refused with [`SqlError::NotAQuery`], constraints or not.
//!
//! # `min_group_size = k`
//!
//! Every released group has at least `k` distinct contributors from *every* input of the
//! query, counted per input, not over joined rows. Without this, a party that owns one side of
//! a join could single out a row of the other side: `k` fabricated rows joined to one patient
//! make a group of `k` joined rows whose `avg(age)` is that patient's age.
//!
//! A contributor is, per table scan:
//!
//! - a distinct value of the table's privacy unit column, when the manifest declares one
//!   (`privacy_unit: patient_id`), so one person with many rows counts once;
//! - otherwise a distinct row (all its columns), so duplicated rows count once.
//!
//! The query must be an aggregate: below its outermost `Projection`, `Sort`, `Limit`,
//! `SubqueryAlias`, `Filter` (`HAVING`, or `WHERE` on an aggregated subquery) and `Distinct`
//! nodes, the first relational node must be an `Aggregate`. Anything else, or a subquery in
//! one of those outer nodes (it would read rows that no group covers), is refused with
//! [`SqlError::NotAnAggregate`]. Below the aggregate, each table scan is tagged with a hidden
//! contributor column (see `contributors.rs`); nodes that would lose the tags (a nested
//! aggregate, `DISTINCT`, `UNION`, a subquery, a semi join) are refused the same way. The
//! aggregate also computes a hidden `count(*)` and, per input, a hidden
//! `count(DISTINCT contributor)`; directly above it:
//!
//! - with `GROUP BY` (grouping sets included), groups where any of these counts is below `k`
//!   are filtered out, silently, as they would be from any published table;
//! - without `GROUP BY` (one group over all rows), the query fails with
//!   [`SqlError::GroupTooSmall`] if any count is below `k`.
//!
//! A projection then drops the hidden columns, so the result has exactly the query's columns,
//! and every node above the aggregate (`HAVING`, `ORDER BY`, `LIMIT`) sees only the groups that
//! passed.
//!
//! Every table counts, a small lookup table too: a group that stands on one row of a
//! two-row table is suppressed for any `k > 1`. So is a group of an outer join to which one
//! side contributed no row.
//!
//! # What it does not protect
//!
//! The constraint bounds how many contributors of each input stand behind each output row,
//! nothing more:
//!
//! - without a privacy unit, contributors are rows: one person with `k` distinct rows in one
//!   table is `k` contributors. Declare the privacy unit of every table about people;
//! - aggregate functions that return an input value reveal it: `min`, `max`, `first_value`,
//!   `last_value`, `array_agg` and `string_agg` (which reveal every value in the group),
//!   `approx_percentile_cont`, `median`;
//! - differencing: two allowed queries whose groups differ by one row (`WHERE id <> 17`, or
//!   groups of `k` and `k + 1` rows) reveal that row by subtraction; so do a group's `sum`
//!   and `avg` across overlapping filters. The constraint looks at one query at a time;
//!   limiting what queries may run (templates, signed by every party) is the manifest's job;
//! - a party can still fabricate `k` contributors *of its own* table: the threshold protects
//!   each input's rows from the other parties, not a table from its own owner;
//! - whether a group exists at all: a suppressed group, or a refused global aggregate, tells
//!   that fewer than `k` contributors matched;
//! - timing and result size.
use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionState;
use datafusion::execution::context::SQLOptions;
use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
use datafusion::logical_expr::{
    Aggregate, ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility, lit,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::dialect::dialect_from_str;

use crate::SqlError;
use crate::contributors::{UNIT_PREFIX, find, tag_contributors};

/// The name of the hidden per-group row count. Queries may not use it as a column name.
pub const HIDDEN_COUNT: &str = "__coffer_group_rows";

/// Constraints on a query's output, as a manifest's computation declares them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutputConstraints {
    /// Groups with fewer than this many distinct contributors from any one input are
    /// suppressed (see the module docs).
    pub min_group_size: Option<u64>,
    /// Table name → the column whose distinct values are its contributors (a person's id).
    /// A table without one counts distinct rows.
    pub privacy_units: BTreeMap<String, String>,
}

impl OutputConstraints {
    /// No constraints: any single `SELECT` runs.
    pub fn none() -> Self {
        Self::default()
    }

    /// Sets (or with `None`, clears) `min_group_size`.
    pub fn with_min_group_size(mut self, k: Option<u64>) -> Self {
        self.min_group_size = k;
        self
    }

    /// Counts `table`'s contributors by the distinct values of `column`.
    pub fn with_privacy_unit(
        mut self,
        table: impl Into<String>,
        column: impl Into<String>,
    ) -> Self {
        self.privacy_units.insert(table.into(), column.into());
        self
    }
}

/// Plans `sql`, binds `params` (`$name` placeholders, by name without the `$`), applies
/// `constraints`, runs the plan in `ctx` and collects the result.
pub async fn run_constrained(
    ctx: &SessionContext,
    sql: &str,
    params: &[(String, ScalarValue)],
    constraints: &OutputConstraints,
) -> Result<Vec<RecordBatch>, SqlError> {
    let plan = plan_constrained(ctx, sql, params, constraints).await?;
    let frame = ctx.execute_logical_plan(plan).await?;
    Ok(frame.collect().await?)
}

/// The plan [`run_constrained`] runs: `sql` planned as one query, parameters bound, constraints
/// applied. Not yet optimised.
pub async fn plan_constrained(
    ctx: &SessionContext,
    sql: &str,
    params: &[(String, ScalarValue)],
    constraints: &OutputConstraints,
) -> Result<LogicalPlan, SqlError> {
    let plan = plan_query(ctx, sql).await?;
    let plan = bind_params(plan, params)?;
    apply_constraints(plan, constraints)
}

/// Plans `sql`, which must be exactly one `SELECT` query, without binding its placeholders.
pub async fn plan_query(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan, SqlError> {
    let state = ctx.state();
    let statement = parse_one_query(&state, sql)?;
    let plan = state.statement_to_plan(statement).await?;
    // `SELECT … INTO` parses as a query but plans as DDL.
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| SqlError::NotAQuery(e.strip_backtrace()))?;
    Ok(plan)
}

/// Parses `sql` with the session's dialect and parser limits; refuses anything but one query.
fn parse_one_query(state: &SessionState, sql: &str) -> Result<DfStatement, SqlError> {
    let options = &state.config().options().sql_parser;
    let dialect = dialect_from_str(options.dialect).ok_or_else(|| {
        SqlError::DataFusion(DataFusionError::Configuration(format!(
            "unknown SQL dialect {}",
            options.dialect
        )))
    })?;
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(dialect.as_ref())
        .with_recursion_limit(options.recursion_limit.get())
        .build()?
        .parse_statements()?;
    let statement = match (statements.pop_front(), statements.len()) {
        (Some(s), 0) => s,
        (None, _) => return Err(SqlError::NotAQuery("no statement".into())),
        (Some(_), more) => {
            return Err(SqlError::NotAQuery(format!(
                "{} statements; exactly one SELECT query is allowed",
                more.saturating_add(1)
            )));
        }
    };
    match &statement {
        DfStatement::Statement(s) if matches!(**s, SqlStatement::Query(_)) => Ok(statement),
        other => {
            let text = other.to_string();
            let verb = text.split_whitespace().next().unwrap_or("an empty");
            Err(SqlError::NotAQuery(format!(
                "a {verb} statement; only SELECT queries are allowed"
            )))
        }
    }
}

/// Replaces the plan's `$name` placeholders by `params` (names without the `$`). Every
/// placeholder must have a value; values without a placeholder are ignored.
pub fn bind_params(
    plan: LogicalPlan,
    params: &[(String, ScalarValue)],
) -> Result<LogicalPlan, SqlError> {
    let used = plan.get_parameter_names()?;
    if used.is_empty() {
        return Ok(plan);
    }
    let mut missing: Vec<&String> = used
        .iter()
        .filter(|id| {
            let name = id.strip_prefix('$').unwrap_or(id);
            !params.iter().any(|(n, _)| n == name)
        })
        .collect();
    missing.sort();
    if let Some(first) = missing.first() {
        return Err(SqlError::BadTemplate(format!(
            "placeholder {first} has no declared parameter"
        )));
    }
    Ok(plan.with_param_values(params.to_vec())?)
}

/// Applies `constraints` to a planned query (see the module docs).
pub fn apply_constraints(
    plan: LogicalPlan,
    constraints: &OutputConstraints,
) -> Result<LogicalPlan, SqlError> {
    match constraints.min_group_size {
        None => Ok(plan),
        Some(k) => suppress_small_groups(plan, k, &constraints.privacy_units),
    }
}

/// Rebuilds the chain of outer nodes over the aggregate with suppression applied below them.
fn suppress_small_groups(
    plan: LogicalPlan,
    k: u64,
    privacy_units: &BTreeMap<String, String>,
) -> Result<LogicalPlan, SqlError> {
    match plan {
        LogicalPlan::Aggregate(aggregate) => suppress_in_aggregate(aggregate, k, privacy_units),
        LogicalPlan::Projection(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Distinct(_) => {
            refuse_subqueries(&plan)?;
            let input = match plan.inputs().as_slice() {
                [input] => (*input).clone(),
                _ => return Err(not_an_aggregate(&plan)),
            };
            let input = suppress_small_groups(input, k, privacy_units)?;
            Ok(plan.with_new_exprs(plan.expressions(), vec![input])?)
        }
        other => Err(not_an_aggregate(&other)),
    }
}

fn not_an_aggregate(plan: &LogicalPlan) -> SqlError {
    SqlError::NotAnAggregate(format!(
        "min_group_size needs an aggregate query, and this result comes from `{}`",
        plan.display()
    ))
}

fn refuse_subqueries(plan: &LogicalPlan) -> Result<(), SqlError> {
    let mut found = false;
    plan.apply_subqueries(|_| {
        found = true;
        Ok(TreeNodeRecursion::Stop)
    })?;
    if found {
        return Err(SqlError::NotAnAggregate(format!(
            "a subquery above the aggregate (in `{}`) reads rows that min_group_size does not \
             cover",
            plan.display()
        )));
    }
    Ok(())
}

fn suppress_in_aggregate(
    aggregate: Aggregate,
    k: u64,
    privacy_units: &BTreeMap<String, String>,
) -> Result<LogicalPlan, SqlError> {
    if let Some(f) = aggregate
        .schema
        .fields()
        .iter()
        .find(|f| f.name().starts_with(HIDDEN_COUNT) || f.name().starts_with(UNIT_PREFIX))
    {
        return Err(SqlError::NotAQuery(format!(
            "the column name {} is reserved",
            f.name()
        )));
    }
    let original: Vec<Expr> = aggregate
        .schema
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let grouped = !aggregate.group_expr.is_empty();
    let tagged = tag_contributors(aggregate.input.as_ref().clone(), privacy_units)?;
    let mut aggr_expr = aggregate.aggr_expr;
    aggr_expr.push(count(lit(1i64)).alias(HIDDEN_COUNT));
    let mut counts = vec![HIDDEN_COUNT.to_owned()];
    for (i, unit) in tagged.units.iter().enumerate() {
        let column = find(tagged.plan.schema(), unit).ok_or_else(|| {
            SqlError::NotAnAggregate(format!("{unit} is lost below the aggregate"))
        })?;
        let name = format!("{HIDDEN_COUNT}_{i}");
        aggr_expr.push(count_distinct(Expr::Column(column)).alias(&name));
        counts.push(name);
    }
    let counted = Aggregate::try_new(Arc::new(tagged.plan), aggregate.group_expr, aggr_expr)?;
    let hidden: Vec<Expr> = counts
        .iter()
        .map(|c| Expr::Column(Column::new_unqualified(c)))
        .collect();
    let min = lit(i64::try_from(k).unwrap_or(i64::MAX));
    let keep = if grouped {
        hidden
            .into_iter()
            .map(|c| c.gt_eq(min.clone()))
            .reduce(Expr::and)
            .unwrap_or_else(|| lit(true))
    } else {
        ScalarUDF::new_from_impl(RequireMinRows::new(k)).call(hidden)
    };
    Ok(LogicalPlanBuilder::from(LogicalPlan::Aggregate(counted))
        .filter(keep)?
        .project(original)?
        .build()?)
}

/// `coffer_require_min_group_size(n)`: `true` where `n >= min`, and an error
/// ([`SqlError::GroupTooSmall`]) as soon as one row has `n < min`. Volatile, so the optimiser
/// neither folds nor moves it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RequireMinRows {
    min: u64,
    signature: Signature,
}

impl RequireMinRows {
    fn new(min: u64) -> Self {
        Self {
            min,
            signature: Signature::variadic(vec![DataType::Int64], Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for RequireMinRows {
    fn name(&self) -> &str {
        "coffer_require_min_group_size"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let min = i64::try_from(self.min).unwrap_or(i64::MAX);
        let mut rows = args.number_rows;
        for counts in &args.args {
            let counts = counts.to_array(args.number_rows)?;
            let counts = counts
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| DataFusionError::Internal(format!("{} takes Int64", self.name())))?;
            if counts.iter().any(|n| n.is_none_or(|n| n < min)) {
                return Err(DataFusionError::External(Box::new(
                    SqlError::GroupTooSmall {
                        min_group_size: self.min,
                    },
                )));
            }
            rows = counts.len();
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
            true;
            rows
        ]))))
    }
}
