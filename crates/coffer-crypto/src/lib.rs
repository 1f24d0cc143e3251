//! Coffer's cryptography, shared by every party and every in-TEE service.
//!
//! - [`SecretKey`] and [`KeyId`]: data keys as zeroizing, redacted, constant-time-compared
//!   newtypes, and their validated names.
//! - [`KeySource`]: where a reader gets keys by id (a party's keyring, or the broker's release
//!   for one job).
//! - [`delivery`]: results for people, in the age format that the `age` command reads.
//!
//! Nothing in this crate reads the clock, the network or the file system except where a
//! function takes a path explicitly.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

pub mod delivery;
mod error;
mod keys;
pub mod sealed;

pub use error::Error;
pub use keys::{KeyId, KeySource, MemoryKeys, SecretKey};
