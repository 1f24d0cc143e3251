//! The crate's one error type.

/// Everything that can go wrong in `coffer-gbdt`.
///
/// `MalformedModel` and `Unsupported` come from model files (attacker-controlled input);
/// `InvalidParam` and `InvalidData` from the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GbdtError {
    /// A training parameter is unknown or out of range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter's XGBoost name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Matrix shape, labels, weights or values are inconsistent.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A model file is not a well-formed XGBoost JSON model.
    #[error("malformed model: {0}")]
    MalformedModel(String),
    /// A well-formed model uses something this crate does not implement (categorical splits,
    /// vector leaves, other boosters or objectives).
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// The JSON text itself does not parse.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The training set has fewer rows than `min_leaf_rows`: even one leaf would cover fewer.
    #[error("group_too_small: the training set has fewer than {min_leaf_rows} rows")]
    GroupTooSmall {
        /// The floor (a manifest's `min_group_size`).
        min_leaf_rows: u64,
    },
    /// The rayon thread pool could not be built.
    #[error("thread pool: {0}")]
    ThreadPool(String),
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, GbdtError>;

pub(crate) fn malformed(msg: impl Into<String>) -> GbdtError {
    GbdtError::MalformedModel(msg.into())
}

pub(crate) fn invalid_param(name: &str, reason: impl Into<String>) -> GbdtError {
    GbdtError::InvalidParam {
        name: name.to_owned(),
        reason: reason.into(),
    }
}
