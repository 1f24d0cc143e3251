//! Files that appear whole or not at all.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::Error;

/// An output file written to a temporary file beside its destination and renamed into place by
/// [`AtomicFile::commit`]. Dropped without commit, it leaves nothing behind, so a failed
/// decryption never leaves a partial plaintext.
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing `dest`. The temporary file is created with mode 0600.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self, Error> {
        let dest = dest.as_ref().to_path_buf();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".coffer-tmp-")
            .tempfile_in(&dir)
            .map_err(Error::io(&dir))?;
        Ok(Self { temp, dest })
    }

    /// The file being written.
    pub fn file(&mut self) -> &mut fs::File {
        self.temp.as_file_mut()
    }

    /// Flushes to disk and renames into place, replacing any existing file.
    pub fn commit(self) -> Result<(), Error> {
        self.finish(false)
    }

    /// Like [`AtomicFile::commit`], but refuses to replace an existing file.
    pub fn commit_new(self) -> Result<(), Error> {
        self.finish(true)
    }

    fn finish(self, no_clobber: bool) -> Result<(), Error> {
        let Self { temp, dest } = self;
        temp.as_file().sync_all().map_err(Error::io(&dest))?;
        let persisted = if no_clobber {
            temp.persist_noclobber(&dest)
        } else {
            temp.persist(&dest)
        };
        persisted.map(drop).map_err(|e| Error::Io {
            path: dest,
            source: e.error,
        })
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// Writes a whole file atomically with `mode` (0600 for secrets, 0644 for public files).
pub(crate) fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    no_clobber: bool,
) -> Result<(), Error> {
    let mut file = AtomicFile::create(path)?;
    set_mode(file.file(), mode).map_err(Error::io(path))?;
    file.write_all(bytes).map_err(Error::io(path))?;
    file.finish(no_clobber)
}

#[cfg(unix)]
fn set_mode(file: &fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &fs::File, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(Error::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"whole");
    }

    #[test]
    fn secret_files_are_private_and_not_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        write_file(&p, b"k", 0o600, true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(write_file(&p, b"other", 0o600, true).is_err());
        assert_eq!(fs::read(&p).unwrap(), b"k");
    }
}
