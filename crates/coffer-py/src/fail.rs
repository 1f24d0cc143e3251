//! Errors as the Python package raises them: `coffer.Refused` (a check refused; `.check`
//! names it, as on the CLI) or `coffer.UsageError` (the caller's mistake: arguments, files,
//! I/O). Never a bare `RuntimeError`.

use pyo3::PyErr;
use pyo3::prelude::*;

/// A failure on its way to Python.
#[derive(Debug)]
pub(crate) enum Fail {
    Refused { check: String, message: String },
    Usage { check: String, message: String },
}

impl Fail {
    pub(crate) fn usage(check: &str, message: impl Into<String>) -> Self {
        Self::Usage {
            check: check.to_owned(),
            message: message.into(),
        }
    }
}

impl Fail {
    /// A refusal or a usage error, as the error classifies itself.
    fn classified(refusal: bool, check: &str, message: String) -> Self {
        let check = check.to_owned();
        if refusal {
            Self::Refused { check, message }
        } else {
            Self::Usage { check, message }
        }
    }
}

impl From<coffer_client::Error> for Fail {
    fn from(e: coffer_client::Error) -> Self {
        Self::classified(e.is_refusal(), e.check(), e.to_string())
    }
}

impl From<coffer_parquet::Error> for Fail {
    fn from(e: coffer_parquet::Error) -> Self {
        Self::classified(e.is_refusal(), e.check(), e.to_string())
    }
}

impl From<coffer_crypto::Error> for Fail {
    fn from(e: coffer_crypto::Error) -> Self {
        coffer_client::Error::from(e).into()
    }
}

impl From<Fail> for PyErr {
    fn from(f: Fail) -> Self {
        let (class, check, message) = match f {
            Fail::Refused { check, message } => ("Refused", check, message),
            Fail::Usage { check, message } => ("UsageError", check, message),
        };
        Python::attach(|py| {
            let raised = py
                .import("coffer.errors")
                .and_then(|m| m.getattr(class))
                .and_then(|cls| cls.call1((message.clone(), check.clone())));
            match raised {
                Ok(exc) => PyErr::from_value(exc),
                // The Python half of the package is missing: say so rather than guess.
                Err(e) => e,
            }
        })
    }
}

/// `PyResult` for functions that fail with [`Fail`].
pub(crate) type Result<T> = std::result::Result<T, Fail>;
