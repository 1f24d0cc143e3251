//! Query templates: typed parameters that a manifest declares and a job fills in.
//!
//! A computation's `params` declare the placeholders its query uses, each with a type:
//!
//! ```yaml
//! query: |
//!   SELECT region, count(*) AS n FROM people
//!   WHERE age >= $min_age AND region = $region GROUP BY region
//! params: { min_age: { type: int64 }, region: { type: utf8 } }
//! ```
//!
//! [`bind_template`] checks a job's values against those declarations and returns them as typed
//! [`ScalarValue`]s. They reach the plan as DataFusion placeholder values
//! ([`crate::constraints::run_constrained`]), never by editing the query text, so a value cannot
//! change what the query is.
//!
//! Types: `int64` (a JSON integer), `float64` (a JSON number), `utf8` (a string), `bool`, and
//! `date` (a `YYYY-MM-DD` string). A declaration may also carry a `description` string.
use std::collections::BTreeMap;

use datafusion::arrow::compute::kernels::cast_utils::Parser;
use datafusion::arrow::datatypes::Date32Type;
use datafusion::common::ScalarValue;
use serde_json::Value;

use crate::SqlError;

/// A declared parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamType {
    /// A JSON integer that fits in an `i64`.
    Int64,
    /// Any JSON number.
    Float64,
    /// A JSON string.
    Utf8,
    /// `true` or `false`.
    Bool,
    /// A `YYYY-MM-DD` string, bound as `Date32`.
    Date,
}

impl ParamType {
    /// The type's name in a manifest.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Int64 => "int64",
            ParamType::Float64 => "float64",
            ParamType::Utf8 => "utf8",
            ParamType::Bool => "bool",
            ParamType::Date => "date",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            ParamType::Int64,
            ParamType::Float64,
            ParamType::Utf8,
            ParamType::Bool,
            ParamType::Date,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }

    /// Reads a declaration: `{ type: NAME }`, optionally with a `description`.
    fn from_declaration(name: &str, declared: &Value) -> Result<Self, SqlError> {
        let bad = |why: &str| SqlError::BadTemplate(format!("parameter {name}: {why}"));
        let fields = declared
            .as_object()
            .ok_or_else(|| bad("a declaration is an object such as {type: int64}"))?;
        if let Some(key) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "type" | "description"))
        {
            return Err(bad(&format!("unknown field {key:?}")));
        }
        if fields.get("description").is_some_and(|d| !d.is_string()) {
            return Err(bad("description must be a string"));
        }
        let type_name = fields
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no type"))?;
        Self::from_name(type_name).ok_or_else(|| {
            bad(&format!(
                "unknown type {type_name:?} (int64, float64, utf8, bool, date)"
            ))
        })
    }

    /// `value` as this type, or `None` if it is not one.
    fn bind(self, value: &Value) -> Option<ScalarValue> {
        match self {
            ParamType::Int64 => value.as_i64().map(|v| ScalarValue::Int64(Some(v))),
            ParamType::Float64 => value.as_f64().map(|v| ScalarValue::Float64(Some(v))),
            ParamType::Utf8 => value
                .as_str()
                .map(|v| ScalarValue::Utf8(Some(v.to_owned()))),
            ParamType::Bool => value.as_bool().map(|v| ScalarValue::Boolean(Some(v))),
            ParamType::Date => value
                .as_str()
                .and_then(parse_date)
                .map(|d| ScalarValue::Date32(Some(d))),
        }
    }
}

/// Days since 1970-01-01 of a strict `YYYY-MM-DD` date.
fn parse_date(s: &str) -> Option<i32> {
    let shape = s.len() == 10
        && s.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    Date32Type::parse_formatted(s, "%Y-%m-%d")
}

/// A template with its values checked: the query text, unchanged, and one value per declared
/// parameter, named without the `$`.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundTemplate {
    /// The query text, as declared.
    pub sql: String,
    /// The values, in name order, for [`crate::constraints::run_constrained`].
    pub params: Vec<(String, ScalarValue)>,
}

/// Checks `given` (a job's parameter values) against `declared` (the computation's `params`)
/// and returns typed values for `sql`'s placeholders.
///
/// Refuses, in this order: a malformed declaration or a name that is not an identifier
/// ([`SqlError::BadTemplate`]), a value for an undeclared parameter
/// ([`SqlError::UnknownParameter`]), a declared parameter without a value
/// ([`SqlError::MissingParameter`]), and a value of the wrong type
/// ([`SqlError::BadParameterType`]). Placeholders in `sql` without a declaration are refused
/// when the query is planned.
pub fn bind_template(
    sql: &str,
    declared: &BTreeMap<String, Value>,
    given: &BTreeMap<String, Value>,
) -> Result<BoundTemplate, SqlError> {
    let mut types = BTreeMap::new();
    for (name, declaration) in declared {
        if !is_identifier(name) {
            return Err(SqlError::BadTemplate(format!(
                "parameter name {name:?} is not an identifier ([A-Za-z_][A-Za-z0-9_]*)"
            )));
        }
        types.insert(name, ParamType::from_declaration(name, declaration)?);
    }
    if let Some(name) = given.keys().find(|n| !declared.contains_key(*n)) {
        return Err(SqlError::UnknownParameter { name: name.clone() });
    }
    let mut params = Vec::with_capacity(types.len());
    for (name, ty) in types {
        let value = given
            .get(name)
            .ok_or_else(|| SqlError::MissingParameter { name: name.clone() })?;
        let scalar = ty.bind(value).ok_or_else(|| SqlError::BadParameterType {
            name: name.clone(),
            expected: ty.name().to_owned(),
            got: describe(value),
        })?;
        params.push((name.clone(), scalar));
    }
    Ok(BoundTemplate {
        sql: sql.to_owned(),
        params,
    })
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What kind of JSON value `v` is, for error messages (values may be sensitive).
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) if n.is_f64() => "a fractional number".into(),
        Value::Number(n) if n.as_i64().is_none() => "an integer outside int64".into(),
        Value::Number(_) => "an integer".into(),
        Value::String(_) => "a string (not in the declared form)".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn binds_every_type() {
        let declared = map(json!({
            "a": {"type": "int64"}, "b": {"type": "float64", "description": "ratio"},
            "c": {"type": "utf8"}, "d": {"type": "bool"}, "e": {"type": "date"}
        }));
        let given = map(json!({"a": -3, "b": 2, "c": "x'; DROP", "d": true, "e": "1970-01-11"}));
        let bound = bind_template("SELECT 1", &declared, &given).unwrap();
        assert_eq!(
            bound.params,
            vec![
                ("a".into(), ScalarValue::Int64(Some(-3))),
                ("b".into(), ScalarValue::Float64(Some(2.0))),
                ("c".into(), ScalarValue::Utf8(Some("x'; DROP".into()))),
                ("d".into(), ScalarValue::Boolean(Some(true))),
                ("e".into(), ScalarValue::Date32(Some(10))),
            ]
        );
    }

    #[test]
    fn refuses_wrong_types() {
        let cases = [
            ("int64", json!(1.5)),
            ("int64", json!("1")),
            ("int64", json!(u64::MAX)),
            ("float64", json!("1.0")),
            ("utf8", json!(1)),
            ("bool", json!("true")),
            ("date", json!("2024-02-30")),
            ("date", json!("2024-2-03")),
            ("date", json!("+2024-02-03")),
            ("date", json!(20240203)),
        ];
        for (ty, value) in cases {
            let declared = map(json!({"p": {"type": ty}}));
            let given = map(json!({"p": value}));
            let err = bind_template("SELECT $p", &declared, &given).unwrap_err();
            assert_eq!(
                err.check(),
                Some("bad_parameter_type"),
                "{ty} {value}: {err}"
            );
        }
    }

    #[test]
    fn refuses_bad_declarations_and_names() {
        let bad = [
            json!({"p": "int64"}),
            json!({"p": {"type": "int32"}}),
            json!({"p": {"type": "int64", "default": 3}}),
            json!({"p": {}}),
            json!({"1": {"type": "int64"}}),
            json!({"p q": {"type": "int64"}}),
        ];
        for declared in bad {
            let err = bind_template("SELECT 1", &map(declared.clone()), &BTreeMap::new());
            assert_eq!(err.unwrap_err().check(), Some("bad_template"), "{declared}");
        }
    }

    #[test]
    fn refuses_unknown_and_missing() {
        let declared = map(json!({"p": {"type": "int64"}}));
        let err = bind_template("SELECT 1", &declared, &map(json!({"p": 1, "q": 2})));
        assert!(matches!(err, Err(SqlError::UnknownParameter { name }) if name == "q"));
        let err = bind_template("SELECT 1", &declared, &BTreeMap::new());
        assert!(matches!(err, Err(SqlError::MissingParameter { name }) if name == "p"));
    }
}
