//! Computation kinds, each an adapter behind [`Kind`].
//!
//! A kind gets a judged job whose inputs matched their pins and whose keys were released
//! ([`JobContext`], [`Input`]); it runs the computation with the manifest's constraints
//! applied (the manifest validator has refused any constraint the kind does not enforce) and
//! delivers its outputs through [`JobContext::deliver`]. Adding a kind is one file here, a
//! line in [`adapter`], and the kind's constraints in `coffer_manifest`'s validator.

use std::future::Future;
use std::pin::Pin;

use coffer_manifest::{Computation, ComputationKind};
use coffer_net::job::{OutputFormat, OutputRef};

use crate::context::{Input, JobContext};
use crate::refusal::Refusal;

mod gbdt_predict;
mod gbdt_train;
mod session;
mod sql;

pub(crate) use session::session;

/// What a kind's run returns: the job's outputs, stored and encrypted, or the failed check.
pub(crate) type Run<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<OutputRef>, Refusal>> + Send + 'a>>;

/// One computation kind.
pub(crate) trait Kind: Sync {
    /// Refuses, before any input is read or key released, what this kind cannot run (for
    /// example an output format it does not write).
    fn admit(&self, comp: &Computation, format: OutputFormat) -> Result<(), Refusal> {
        let _ = (comp, format);
        Ok(())
    }

    /// Runs the job over `inputs` (in the manifest's order) under the computation's
    /// constraints and delivers its outputs.
    fn run<'a>(&'a self, job: &'a JobContext<'a>, inputs: Vec<Input>) -> Run<'a>;
}

/// The adapter for `kind`, if this worker runs it.
pub(crate) fn adapter(kind: ComputationKind) -> Option<&'static dyn Kind> {
    match kind {
        ComputationKind::Sql => Some(&sql::Sql),
        ComputationKind::GbdtTrain => Some(&gbdt_train::GbdtTrain),
        ComputationKind::GbdtPredict => Some(&gbdt_predict::GbdtPredict),
        _ => None,
    }
}
