//! Tags every row below an aggregate with who contributed it, one hidden column per table scan.
//!
//! `min_group_size` counts distinct contributors per input, not joined rows: a party that
//! fabricates or duplicates rows on its side of a join must not lift a group over `k` (see
//! the module docs of [`crate::constraints`]). [`tag_contributors`] rewrites the aggregate's
//! input so that each `TableScan` gets a column `__coffer_unit_<i>` holding, per row:
//!
//! - the value of the table's privacy unit column, when the computation names one (one person
//!   with many rows is then one contributor; a NULL unit is nobody);
//! - otherwise the whole row, as a struct of all its columns (identical rows are one
//!   contributor).
//!
//! The columns are carried up through the nodes that keep rows apart (`Projection`, `Filter`,
//! `Join`, `SubqueryAlias`, `Sort`, `Limit`, `Window`). Nodes that merge or regroup rows before
//! the constrained aggregate (a nested aggregate, `DISTINCT`, `UNION`, subqueries in
//! expressions) would lose track of contributors, and are refused with
//! [`SqlError::NotAnAggregate`]; so is a plan where a tag does not reach the aggregate (a semi
//! join drops its right side's columns).
use std::collections::BTreeMap;

use datafusion::common::{Column, DFSchema};
use datafusion::functions::expr_fn::r#struct;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};

use crate::SqlError;

/// Prefix of the hidden contributor columns. Queries may not use it in column names.
pub const UNIT_PREFIX: &str = "__coffer_unit_";

/// The aggregate input, rewritten, and the names of the contributor columns it now carries.
#[derive(Debug)]
pub(crate) struct Tagged {
    pub plan: LogicalPlan,
    pub units: Vec<String>,
}

/// Rewrites `plan` (an aggregate's input) so that every table scan below it carries a
/// contributor column. `privacy_units` maps a table name to its privacy unit column.
pub(crate) fn tag_contributors(
    plan: LogicalPlan,
    privacy_units: &BTreeMap<String, String>,
) -> Result<Tagged, SqlError> {
    let mut units = Vec::new();
    let plan = tag(plan, privacy_units, &mut units)?;
    for unit in &units {
        if find(plan.schema(), unit).is_none() {
            return Err(SqlError::NotAnAggregate(
                "an input's rows do not reach the aggregate (a semi or anti join), so its \
                 contributors cannot be counted"
                    .into(),
            ));
        }
    }
    Ok(Tagged { plan, units })
}

/// The column of `schema` named `name`, with its qualifier.
pub(crate) fn find(schema: &DFSchema, name: &str) -> Option<Column> {
    schema
        .iter()
        .find(|(_, f)| f.name() == name)
        .map(|(q, f)| Column::new(q.cloned(), f.name()))
}

fn refuse(plan: &LogicalPlan, why: &str) -> SqlError {
    SqlError::NotAnAggregate(format!(
        "min_group_size counts each input's contributors, and `{}` below the aggregate {why}",
        plan.display()
    ))
}

fn tag(
    plan: LogicalPlan,
    privacy_units: &BTreeMap<String, String>,
    units: &mut Vec<String>,
) -> Result<LogicalPlan, SqlError> {
    let mut subqueries = false;
    plan.apply_subqueries(|_| {
        subqueries = true;
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop)
    })?;
    if subqueries {
        return Err(refuse(&plan, "has a subquery, whose rows no group counts"));
    }
    if plan
        .schema()
        .fields()
        .iter()
        .any(|f| f.name().starts_with(UNIT_PREFIX))
    {
        return Err(SqlError::NotAQuery(format!(
            "column names starting with {UNIT_PREFIX} are reserved"
        )));
    }
    match plan {
        LogicalPlan::TableScan(ref scan) => {
            let name = format!("{UNIT_PREFIX}{}", units.len());
            let schema = plan.schema();
            let unit = match privacy_units.get(scan.table_name.table()) {
                Some(column) => {
                    let col = find(schema, column).ok_or_else(|| {
                        SqlError::BadTemplate(format!(
                            "privacy unit {column} is not a column of {}",
                            scan.table_name
                        ))
                    })?;
                    Expr::Column(col)
                }
                None => r#struct(schema.columns().into_iter().map(Expr::Column).collect()),
            };
            let mut exprs: Vec<Expr> = schema.columns().into_iter().map(Expr::Column).collect();
            exprs.push(unit.alias(&name));
            units.push(name);
            Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
        }
        LogicalPlan::Projection(ref p) => {
            let mut exprs = p.expr.clone();
            let before = units.len();
            let input = tag(p.input.as_ref().clone(), privacy_units, units)?;
            for unit in units.get(before..).unwrap_or_default() {
                let col = find(input.schema(), unit)
                    .ok_or_else(|| refuse(&plan, "drops an input's rows"))?;
                exprs.push(Expr::Column(col));
            }
            Ok(plan.with_new_exprs(exprs, vec![input])?)
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Join(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Window(_) => {
            let inputs = plan
                .inputs()
                .into_iter()
                .map(|i| tag(i.clone(), privacy_units, units))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(plan.with_new_exprs(plan.expressions(), inputs)?)
        }
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => Ok(plan),
        LogicalPlan::Aggregate(_) => Err(refuse(&plan, "groups rows already")),
        LogicalPlan::Distinct(_) => Err(refuse(&plan, "merges rows")),
        LogicalPlan::Union(_) => Err(refuse(&plan, "mixes rows of several inputs")),
        other => Err(refuse(&other, "is not supported")),
    }
}
