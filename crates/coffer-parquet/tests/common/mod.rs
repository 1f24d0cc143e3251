//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use bytes::Bytes;
use coffer_crypto::{KeyId, KeySource, MemoryKeys, SecretKey};
use coffer_parquet::{DecryptOptions, DecryptedReader, EncryptOptions, Error, encrypt_batches};

/// An in-memory keyring: `coffer_crypto::MemoryKeys` with test-friendly builders.
#[derive(Debug, Default, Clone)]
pub struct MemKeys(pub MemoryKeys);

impl MemKeys {
    pub fn with(mut self, id: &str, key: &[u8]) -> Self {
        self.0
            .insert(KeyId::new(id).unwrap(), SecretKey::from_bytes(key).unwrap());
        self
    }

    pub fn with_random(mut self, id: &str, bits: usize) -> Self {
        self.0
            .insert(KeyId::new(id).unwrap(), SecretKey::generate(bits).unwrap());
        self
    }

    pub fn without(mut self, id: &str) -> Self {
        self.0.remove(&KeyId::new(id).unwrap());
        self
    }

    pub fn arc(&self) -> Arc<dyn KeySource> {
        Arc::new(self.0.clone())
    }
}

impl KeySource for MemKeys {
    fn key(&self, id: &KeyId) -> Result<SecretKey, coffer_crypto::Error> {
        self.0.key(id)
    }
}

pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/parquet_encryption")
        .join(name)
}

/// A small seeded generator (SplitMix64). The seed is random per run unless
/// `COFFER_TEST_SEED` is set, and is printed so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(test: &str) -> Self {
        let seed = match std::env::var("COFFER_TEST_SEED") {
            Ok(s) => s.parse().expect("COFFER_TEST_SEED is a u64"),
            Err(_) => {
                let mut b = [0u8; 8];
                aws_lc_rs::rand::fill(&mut b).unwrap();
                u64::from_le_bytes(b)
            }
        };
        eprintln!("{test}: COFFER_TEST_SEED={seed}");
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// Encrypts one batch into an in-memory file.
pub fn encrypt(batch: &RecordBatch, keys: &MemKeys, opts: &EncryptOptions) -> Bytes {
    let mut out = Vec::new();
    encrypt_batches(batch.schema(), [Ok(batch.clone())], &mut out, keys, opts).unwrap();
    Bytes::from(out)
}

/// Decrypts every row into one batch (the reader splits rows into batches of its own size).
pub fn read_all(file: Bytes, keys: &MemKeys) -> Result<RecordBatch, Error> {
    let reader = DecryptedReader::open(file, keys.arc(), &DecryptOptions::default())?;
    let schema = reader.schema().clone();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(concat_batches(&schema, &batches).unwrap())
}
