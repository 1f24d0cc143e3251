//! End-to-end tests of the `coffer` binary: one test binary, one module per command group.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod attest;
mod broker;
mod common;
mod gbdt;
mod identity;
mod jobs;
mod manifest;
#[path = "../../../coffer-parquet/tests/py/peer.rs"]
mod py_peer;
mod seal;
mod table;
