//! 32-byte key files, created if absent with mode 0600 via a temporary file and a rename.

use std::fs;
use std::io::Write;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::StoreError;

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { what, path, source }
}

/// Reads the 32-byte key in `path`, or creates it from the system CSPRNG.
pub(crate) fn load_or_create(path: &Path) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let mut key = Zeroizing::new([0u8; 32]);
            if bytes.len() != 32 {
                return Err(StoreError::BadKeyFile {
                    path: path.to_path_buf(),
                    reason: format!("{} bytes, expected 32", bytes.len()),
                });
            }
            key.copy_from_slice(&bytes);
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(io("reading", path)(e)),
    }
}

fn create(path: &Path) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let mut key = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(key.as_mut_slice())
        .map_err(|_| StoreError::Seal("CSPRNG failed".into()))?;
    if install_new(path, key.as_slice())? {
        Ok(key)
    } else {
        load_or_create(path)
    }
}

/// Reads the file at `path`, or writes `create()`'s bytes there (mode 0600) and returns them.
pub(crate) fn load_or_create_blob(
    path: &Path,
    create: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, StoreError>,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Zeroizing::new(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = create()?;
            if install_new(path, &bytes)? {
                Ok(bytes)
            } else {
                Ok(Zeroizing::new(fs::read(path).map_err(io("reading", path))?))
            }
        }
        Err(e) => Err(io("reading", path)(e)),
    }
}

/// Writes `bytes` to a new file at `path` (mode 0600, synced) unless one exists; `false` if
/// another process created it first (its content is kept).
fn install_new(path: &Path, bytes: &[u8]) -> Result<bool, StoreError> {
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| StoreError::Seal("CSPRNG failed".into()))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", hex::encode(suffix)));
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp).map_err(io("creating", &tmp))?;
        file.write_all(bytes).map_err(io("writing", &tmp))?;
        file.sync_all().map_err(io("syncing", &tmp))?;
        // Never replace a key another process created meanwhile: link, then unlink.
        match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io("installing", path)(e)),
        }
    })();
    let _ = fs::remove_file(&tmp);
    result
}
