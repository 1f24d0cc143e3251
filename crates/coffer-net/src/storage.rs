//! Untrusted object storage, through `object_store`: ciphertext in, ciphertext out.
//!
//! A storage URL is `file:///absolute/dir` or a plain directory path (created if missing).
//! Objects are named by relative paths (`alpha/patients.parquet`). Writes are atomic: the
//! local store stages each object in a temporary file and renames it into place, so a reader
//! never sees half an object. Nothing here trusts what it reads: callers pin digests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("object name {name:?}: {reason}")]
    BadName { name: String, reason: String },
    #[error("object {name:?} is not in storage")]
    NotFound { name: String },
    #[error("object {name:?} is larger than the limit of {max_bytes} bytes")]
    TooLarge { name: String, max_bytes: u64 },
    #[error("storage: {0}")]
    Io(String),
}

impl StorageError {
    /// The stable name of the failed check.
    pub fn check(&self) -> &'static str {
        match self {
            Self::BadUrl { .. } => "storage_url",
            Self::BadName { .. } => "storage_uri",
            Self::NotFound { .. } => "input_missing",
            Self::TooLarge { .. } => "input_too_large",
            Self::Io(_) => "storage",
        }
    }
}

/// An opened object store.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    url: String,
    root: PathBuf,
}

/// `sha256:<hex>` of `bytes`: the digest a manifest pins.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Storage {
    /// Opens `url`: `file:///dir` or a directory path. Other schemes (`s3://`, `gs://`) are
    /// refused by name: this build carries only the local store.
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let bad = |reason: String| StorageError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let dir = if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad(
                    "a file:// URL needs an absolute path (file:///dir)".into()
                ));
            }
            PathBuf::from(rest)
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(bad(format!(
                "scheme {scheme}:// is not supported by this build (file:// only)"
            )));
        } else {
            PathBuf::from(url)
        };
        std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
        let root = dir.canonicalize().map_err(|e| bad(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&root).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            url: format!("file://{}", root.display()),
            root,
        })
    }

    /// The canonical URL, `file:///dir`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local directory behind the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object a manifest's dataset `uri` names: a relative name, or this storage's URL
    /// followed by one. Anything else is refused (it would name another store).
    pub fn resolve(&self, uri: &str) -> Result<String, StorageError> {
        let name = match uri.strip_prefix(self.url.as_str()) {
            Some(rest) => rest.trim_start_matches('/'),
            None if uri.contains("://") => {
                return Err(StorageError::BadName {
                    name: uri.to_owned(),
                    reason: format!("not in this worker's storage ({})", self.url),
                });
            }
            None => uri,
        };
        self.object_path(name)?;
        Ok(name.to_owned())
    }

    fn object_path(&self, name: &str) -> Result<ObjectPath, StorageError> {
        let bad = |reason: &str| StorageError::BadName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if name.is_empty() || name.starts_with('/') {
            return Err(bad("must be a relative path"));
        }
        if name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(bad("empty, `.` or `..` segment"));
        }
        ObjectPath::parse(name).map_err(|e| bad(&e.to_string()))
    }

    /// Reads a whole object.
    pub async fn get(&self, name: &str) -> Result<Bytes, StorageError> {
        let path = self.object_path(name)?;
        match self.store.get(&path).await {
            Ok(r) => r.bytes().await.map_err(|e| StorageError::Io(e.to_string())),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound {
                name: name.to_owned(),
            }),
            Err(e) => Err(StorageError::Io(e.to_string())),
        }
    }

    /// Reads an object of at most `max_bytes`, hashing it as it streams in; returns the bytes
    /// and their digest ([`digest`]). A larger object is refused ([`StorageError::TooLarge`])
    /// as soon as its size or the bytes read so far exceed the limit, before it is held whole.
    pub async fn get_hashed(
        &self,
        name: &str,
        max_bytes: u64,
    ) -> Result<(Bytes, String), StorageError> {
        use futures::StreamExt;
        let too_large = || StorageError::TooLarge {
            name: name.to_owned(),
            max_bytes,
        };
        let path = self.object_path(name)?;
        let r = match self.store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::NotFound {
                    name: name.to_owned(),
                });
            }
            Err(e) => return Err(StorageError::Io(e.to_string())),
        };
        if r.meta.size > max_bytes {
            return Err(too_large());
        }
        let mut hasher = Sha256::new();
        let mut buf = bytes::BytesMut::with_capacity(usize::try_from(r.meta.size).unwrap_or(0));
        let mut stream = r.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| StorageError::Io(e.to_string()))?;
            let total = u64::try_from(buf.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
            if total > max_bytes {
                return Err(too_large());
            }
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        Ok((buf.freeze(), digest))
    }

    /// Writes a whole object, atomically (replacing any earlier one).
    pub async fn put(&self, name: &str, bytes: Bytes) -> Result<(), StorageError> {
        let path = self.object_path(name)?;
        self.store
            .put(&path, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| StorageError::Io(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn round_trip_and_names() {
        let dir = std::env::temp_dir().join(format!("coffer-storage-{}", std::process::id()));
        let s = Storage::open(dir.to_str().unwrap()).unwrap();
        s.put("a/b.bin", Bytes::from_static(b"xyz")).await.unwrap();
        assert_eq!(&s.get("a/b.bin").await.unwrap()[..], b"xyz");
        assert_eq!(s.get("a/c").await.unwrap_err().check(), "input_missing");
        let (bytes, d) = s.get_hashed("a/b.bin", 3).await.unwrap();
        assert_eq!((&bytes[..], d), (&b"xyz"[..], digest(b"xyz")));
        assert_eq!(
            s.get_hashed("a/b.bin", 2).await.unwrap_err().check(),
            "input_too_large"
        );
        for bad in ["", "/etc/passwd", "a/../../x", "a//b", "s3://x/y"] {
            assert!(s.resolve(bad).is_err(), "{bad}");
        }
        let full = format!("{}/a/b.bin", s.url());
        assert_eq!(s.resolve(&full).unwrap(), "a/b.bin");
        assert!(Storage::open("s3://bucket/x").is_err());
        assert!(Storage::open("file://relative").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
