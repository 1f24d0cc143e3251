//! A Coffer party's home directory, shared by the `coffer` CLI and the SDKs.
//!
//! - [`Home`]: where a party keeps its files (`--home`, else `$COFFER_HOME`, else `~/.coffer`).
//! - [`Identity`] / [`PublicIdentity`]: the party's Ed25519 signing key and X25519 age
//!   identity, and the small public file parties exchange.
//! - [`Keyring`]: the party's data and master keys by id; a [`coffer_crypto::KeySource`].
//! - [`blobs`]: seal and unseal files (keyring keys or age recipients).
//! - [`broker`]: attest a key broker and pin it; submit manifests, grant keys, fetch the
//!   audit log over the pinned, attested channel.
//! - [`manifests`]: load, sign into `FILE.sigs`, judge.
//! - [`jobs`]: sign and submit jobs, follow them, and collect results only after the receipt,
//!   the worker's evidence and every output's digest check out.
//! - [`AtomicFile`]: output that appears only when complete (temporary file, then rename).
//!
//! Secret files are created with mode 0600 in a 0700 directory, and are never overwritten by
//! `init`.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

pub mod attest;
pub mod audit;
pub mod blobs;
pub mod broker;
mod error;
mod fsutil;
pub mod gbdt;
pub mod grants;
mod home;
mod identity;
pub mod jobs;
mod keyring;
pub mod manifests;
pub mod tables;

pub use error::Error;
pub use fsutil::AtomicFile;
pub use home::Home;
pub use identity::{Identity, PublicIdentity};
pub use keyring::{KeyInfo, Keyring};
