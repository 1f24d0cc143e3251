//! Parquet Modular Encryption (AES_GCM_V1) with the key-management-tools metadata that PyArrow's
//! and Spark's `CryptoFactory` write, so encrypted tables move both ways between Coffer and them.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]
