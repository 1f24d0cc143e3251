//! `coffer._coffer`: the native half of the `coffer` Python package.
//!
//! Every call goes through `coffer-client` and the crates below it; the Python half
//! (`python/coffer`) only converts between pandas/PyArrow and Parquet bytes and shapes the
//! API. There is no cryptography on the Python side. Calls that do real work (key generation,
//! encryption, decryption) release the GIL.

mod fail;
mod ml;
mod net;

use std::path::PathBuf;

use coffer_client::{Home, Identity, Keyring, blobs, manifests, tables};
use coffer_crypto::{KeyId, KeySource, SecretKey};
use coffer_parquet::{DecryptOptions, EncryptOptions, OutputFormat};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::fail::{Fail, Result};

pub(crate) fn key_id(id: &str) -> Result<KeyId> {
    KeyId::new(id).map_err(|e| Fail::usage("key_id", e.to_string()))
}

/// A party's home: its identity and keyring. Use `coffer.Party` rather than this class.
#[pyclass(module = "coffer._coffer", name = "NativeParty", frozen)]
#[derive(Debug)]
struct NativeParty {
    home: Home,
}

impl NativeParty {
    fn keyring(&self) -> Result<Keyring> {
        Ok(Keyring::open(&self.home)?)
    }
}

#[pymethods]
impl NativeParty {
    /// Creates the identity of party `name` in `home` (default `$COFFER_HOME`, else
    /// `~/.coffer`); refuses to overwrite one.
    #[staticmethod]
    #[pyo3(signature = (name, home=None))]
    fn init(py: Python<'_>, name: String, home: Option<PathBuf>) -> PyResult<Self> {
        let home = Home::resolve(home).map_err(Fail::from)?;
        let h = home.clone();
        py.detach(move || Identity::init(&h, &name))
            .map_err(Fail::from)?;
        Ok(Self { home })
    }

    /// Opens the party whose identity is in `home`.
    #[staticmethod]
    #[pyo3(signature = (home=None))]
    fn open(home: Option<PathBuf>) -> PyResult<Self> {
        let home = Home::resolve(home).map_err(Fail::from)?;
        Identity::load(&home).map_err(Fail::from)?;
        Ok(Self { home })
    }

    /// The home directory.
    #[getter]
    fn home(&self) -> PathBuf {
        self.home.root().to_path_buf()
    }

    /// `(name, signing_key, recipient)`: the public identity parties exchange.
    fn identity(&self) -> PyResult<(String, String, String)> {
        let public = Identity::load(&self.home).map_err(Fail::from)?.public();
        Ok((public.name, public.signing_key, public.recipient))
    }

    /// Creates a random key `id` of `bits` (128, 192 or 256) in the keyring.
    fn key_new(&self, py: Python<'_>, id: &str, bits: usize) -> PyResult<()> {
        let id = key_id(id)?;
        if ![128, 192, 256].contains(&bits) {
            return Err(Fail::usage(
                "key_bits",
                format!("bits must be 128, 192 or 256, not {bits}"),
            )
            .into());
        }
        let mut ring = self.keyring()?;
        py.detach(move || -> Result<()> {
            ring.insert(id, SecretKey::generate(bits)?)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Imports key `id` from hex (16, 24 or 32 bytes).
    fn key_import_hex(&self, id: &str, hex: &str) -> PyResult<()> {
        let id = key_id(id)?;
        let key = SecretKey::from_hex(hex).map_err(Fail::from)?;
        self.keyring()?.insert(id, key).map_err(Fail::from)?;
        Ok(())
    }

    /// `[(id, bits)]` of the keyring: never the keys.
    fn key_list(&self) -> PyResult<Vec<(String, usize)>> {
        Ok(self
            .keyring()?
            .list()
            .into_iter()
            .map(|k| (k.id, k.bits))
            .collect())
    }

    /// Encrypts plaintext Parquet bytes to `path` with Parquet Modular Encryption: the footer
    /// (and every column, unless `column_keys` says otherwise) under `footer_key`, the columns
    /// listed under their own keys. Written whole or not at all. Returns the row count.
    #[pyo3(signature = (plain, path, footer_key, column_keys, double_wrapping=true, plaintext_footer=false))]
    #[allow(clippy::too_many_arguments)]
    fn encrypt_parquet(
        &self,
        py: Python<'_>,
        plain: Vec<u8>,
        path: PathBuf,
        footer_key: &str,
        column_keys: Vec<(String, Vec<String>)>,
        double_wrapping: bool,
        plaintext_footer: bool,
    ) -> PyResult<u64> {
        let opts = EncryptOptions {
            column_keys: column_keys
                .into_iter()
                .map(|(id, cols)| Ok((key_id(&id)?, cols)))
                .collect::<Result<Vec<_>>>()?,
            double_wrapping,
            plaintext_footer,
            ..EncryptOptions::new(key_id(footer_key)?)
        };
        let home = self.home.clone();
        let rows = py.detach(move || -> Result<u64> {
            let summary = tables::encrypt(&home, tables::Plain::Parquet(&plain), &path, &opts)?;
            Ok(summary.rows)
        })?;
        Ok(rows)
    }

    /// Decrypts an encrypted Parquet file with this party's keys; returns plaintext Parquet
    /// bytes (for `pyarrow.parquet.read_table`). Nothing is written.
    #[pyo3(signature = (path, aad_prefix=None))]
    fn decrypt_parquet<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        aad_prefix: Option<String>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let opts = DecryptOptions {
            aad_prefix: aad_prefix.map(String::into_bytes),
        };
        let home = self.home.clone();
        let plain = py.detach(move || -> Result<Vec<u8>> {
            let mut out = Vec::new();
            tables::decrypt(&home, &path, &mut out, OutputFormat::Parquet, &opts)?;
            Ok(out)
        })?;
        Ok(PyBytes::new(py, &plain))
    }

    /// Signs the manifest at `manifest` as this party (for an update, with its
    /// `predecessor`) and merges the signature into `FILE.sigs`; returns that path.
    #[pyo3(signature = (manifest, predecessor=None))]
    fn sign_manifest(&self, manifest: PathBuf, predecessor: Option<PathBuf>) -> PyResult<PathBuf> {
        let identity = Identity::load(&self.home).map_err(Fail::from)?;
        Ok(manifests::sign(&identity, &manifest, predecessor.as_deref()).map_err(Fail::from)?)
    }

    /// PyArrow's `KmsClient.wrap_key`: wraps a data key under keyring key `master_key_id`
    /// (AES-GCM, the id as AAD: the local-wrap format coffer and parquet-mr use).
    fn wrap_key(&self, key_bytes: Vec<u8>, master_key_id: &str) -> PyResult<String> {
        let master = self
            .keyring()?
            .key(&key_id(master_key_id)?)
            .map_err(Fail::from)?;
        Ok(coffer_parquet::kms::wrap(&master, master_key_id, &key_bytes).map_err(Fail::from)?)
    }

    /// PyArrow's `KmsClient.unwrap_key`: the data key, for PyArrow in this process to use.
    fn unwrap_key<'py>(
        &self,
        py: Python<'py>,
        wrapped_key: &str,
        master_key_id: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let master = self
            .keyring()?
            .key(&key_id(master_key_id)?)
            .map_err(Fail::from)?;
        let key =
            coffer_parquet::kms::unwrap(&master, master_key_id, wrapped_key).map_err(Fail::from)?;
        Ok(PyBytes::new(py, key.expose_secret()))
    }

    /// Seals file `src` into `dst`: under keyring key `key` (bound to `name`, default the
    /// output's file name), or to the age recipients `to`.
    #[pyo3(signature = (src, dst, key=None, to=Vec::new(), name=None))]
    fn seal(
        &self,
        py: Python<'_>,
        src: PathBuf,
        dst: PathBuf,
        key: Option<String>,
        to: Vec<String>,
        name: Option<String>,
    ) -> PyResult<()> {
        let target = match (key, to.is_empty()) {
            (Some(k), true) => blobs::SealTo::Key {
                key: key_id(&k)?,
                name,
            },
            (None, false) if name.is_none() => blobs::SealTo::Recipients(to),
            (None, false) => {
                return Err(Fail::usage("name", "age files bind no name").into());
            }
            (Some(_), false) => {
                return Err(Fail::usage("seal_to", "give a key or recipients, not both").into());
            }
            (None, true) => {
                return Err(Fail::usage("seal_to", "give a key or at least one recipient").into());
            }
        };
        let home = self.home.clone();
        py.detach(move || blobs::seal(&home, &src, &dst, &target))
            .map_err(Fail::from)?;
        Ok(())
    }

    /// Opens `src` (sealed under a keyring key, or an age file to this party) into `dst`.
    #[pyo3(signature = (src, dst, name=None))]
    fn unseal(
        &self,
        py: Python<'_>,
        src: PathBuf,
        dst: PathBuf,
        name: Option<String>,
    ) -> PyResult<()> {
        let home = self.home.clone();
        py.detach(move || blobs::unseal(&home, &src, &dst, name.as_deref()))
            .map_err(Fail::from)?;
        Ok(())
    }

    /// What a file is and how it is protected, as JSON: format, algorithm, key ids, columns.
    #[pyo3(signature = (path, aad_prefix=None))]
    fn inspect_json(&self, path: PathBuf, aad_prefix: Option<String>) -> PyResult<String> {
        let opts = DecryptOptions {
            aad_prefix: aad_prefix.map(String::into_bytes),
        };
        let inspection = tables::inspect(&self.home, &path, &opts).map_err(Fail::from)?;
        serde_json::to_string(&inspection)
            .map_err(|e| Fail::usage("internal", e.to_string()).into())
    }
}

/// A collaboration manifest, validated. Use `coffer.Manifest` rather than this class.
#[pyclass(module = "coffer._coffer", name = "NativeManifest", frozen)]
#[derive(Debug)]
struct NativeManifest {
    path: PathBuf,
    manifest: coffer_manifest::Manifest,
}

#[pymethods]
impl NativeManifest {
    /// Reads and validates the manifest at `path`.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        let (_, manifest) = manifests::load(&path).map_err(Fail::from)?;
        Ok(Self { path, manifest })
    }

    /// Its file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Its canonical hash, `sha256:<hex>`: what parties sign and jobs name.
    #[getter]
    fn hash(&self) -> String {
        self.manifest.hash().to_string()
    }

    /// The collaboration's id.
    #[getter]
    fn id(&self) -> String {
        self.manifest.id().to_owned()
    }

    /// Its status as JSON (hash, active, signed_by, missing, invalid), judged with `sigs`
    /// (default `FILE.sigs`) and, for an update, its predecessors (nearest first).
    #[pyo3(signature = (sigs=None, predecessors=Vec::new()))]
    fn status_json(&self, sigs: Option<PathBuf>, predecessors: Vec<PathBuf>) -> PyResult<String> {
        let status =
            manifests::status(&self.path, sigs.as_deref(), &predecessors).map_err(Fail::from)?;
        serde_json::to_string(&status).map_err(|e| Fail::usage("internal", e.to_string()).into())
    }
}

/// The native module.
#[pymodule]
fn _coffer(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeParty>()?;
    m.add_class::<NativeManifest>()?;
    m.add_class::<net::NativeBroker>()?;
    m.add_class::<net::NativeOrchestrator>()?;
    m.add_class::<ml::NativeBooster>()?;
    m.add_function(wrap_pyfunction!(net::upload, m)?)?;
    m.add_function(wrap_pyfunction!(net::download, m)?)?;
    m.add_function(wrap_pyfunction!(ml::attest_verify, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
