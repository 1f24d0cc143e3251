//! The crate's error type.

use datafusion::error::DataFusionError;

/// Why a constrained query did not run, or failed while running.
///
/// Variants carrying a `check` name ([`SqlError::check`]) are policy refusals: the query, its
/// parameters or its data do not meet what the manifest's parties signed. A worker reports them
/// as such (for example as `PolicyDenied { check }`); [`SqlError::DataFusion`] is everything
/// else (an unknown column, a missing key, a damaged file).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The text is not exactly one `SELECT` query (DDL, DML, `COPY`, `SET`, `EXPLAIN`, several
    /// statements, or none).
    #[error("not_a_query: {0}")]
    NotAQuery(String),
    /// `min_group_size` is set and the query's result is not an aggregate over groups.
    #[error("not_an_aggregate: {0}")]
    NotAnAggregate(String),
    /// `min_group_size` is set and the query is a global aggregate (no `GROUP BY`) over fewer
    /// rows than that. The message gives the bound, never the count.
    #[error("group_too_small: the query's single group has fewer than {min_group_size} rows")]
    GroupTooSmall {
        /// The manifest's `min_group_size`.
        min_group_size: u64,
    },
    /// The manifest's parameter declarations, or the query's placeholders, do not fit together
    /// (an unknown type name, a placeholder with no declaration).
    #[error("bad_template: {0}")]
    BadTemplate(String),
    /// A job gave a parameter the computation does not declare.
    #[error("unknown_parameter: {name} is not declared by the computation")]
    UnknownParameter {
        /// The parameter's name.
        name: String,
    },
    /// A job left out a parameter the computation declares.
    #[error("missing_parameter: {name} is declared by the computation but not given")]
    MissingParameter {
        /// The parameter's name.
        name: String,
    },
    /// A job gave a parameter a value that is not of its declared type.
    #[error("bad_parameter_type: {name} must be {expected}, got {got}")]
    BadParameterType {
        /// The parameter's name.
        name: String,
        /// The declared type (`int64`, `float64`, `utf8`, `bool`, `date`).
        expected: String,
        /// What the value was, described without echoing it in full.
        got: String,
    },
    /// Planning or running the query failed for a reason that is not a policy check.
    #[error("query failed: {0}")]
    DataFusion(DataFusionError),
}

impl SqlError {
    /// The name of the policy check that refused the query, or `None` for an engine failure.
    pub fn check(&self) -> Option<&'static str> {
        match self {
            SqlError::NotAQuery(_) => Some("not_a_query"),
            SqlError::NotAnAggregate(_) => Some("not_an_aggregate"),
            SqlError::GroupTooSmall { .. } => Some("group_too_small"),
            SqlError::BadTemplate(_) => Some("bad_template"),
            SqlError::UnknownParameter { .. } => Some("unknown_parameter"),
            SqlError::MissingParameter { .. } => Some("missing_parameter"),
            SqlError::BadParameterType { .. } => Some("bad_parameter_type"),
            SqlError::DataFusion(_) => None,
        }
    }
}

impl From<DataFusionError> for SqlError {
    /// Recovers a [`SqlError`] that a plan node raised while running (DataFusion wraps it).
    fn from(e: DataFusionError) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if let Some(SqlError::GroupTooSmall { min_group_size }) = c.downcast_ref() {
                return SqlError::GroupTooSmall {
                    min_group_size: *min_group_size,
                };
            }
            cause = c.source();
        }
        SqlError::DataFusion(e)
    }
}
