//! Coffer's transport, shared by the in-TEE services and their clients:
//!
//! - [`server::serve_tls`]: an axum router over TLS with the client's certificate handed to
//!   handlers ([`server::PeerCertificate`]), for RA-TLS appraisal per request;
//! - [`client::Connection`]: HTTPS with keep-alive whose server certificate the caller
//!   appraises before sending anything;
//! - [`signed`]: party requests signed with Ed25519, bound to method, path, body, time, nonce
//!   and the attested server key;
//! - [`api::ApiError`]: the typed error body of every service;
//! - [`job`]: signed job requests and the worker's signed result receipts;
//! - [`broker`], [`orchestrator`]: the services' wire types.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod broker;
pub mod client;
pub mod ids;
pub mod job;
pub mod orchestrator;
pub mod server;
pub mod signed;
pub mod storage;

pub use api::ApiError;
pub use client::{Connection, Endpoint, NetError, Response, client_config};
pub use ids::{JobId, JobNonce, ManifestHash};
pub use server::{PeerAddr, PeerCertificate, serve_tls, shutdown_signal};
pub use signed::{AuthError, SignedHeaders, sign_request};
