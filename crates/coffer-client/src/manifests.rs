//! Collaboration manifests as a party handles them: load, sign into `FILE.sigs`, judge.

use std::io::Write;
use std::path::{Path, PathBuf};

use coffer_manifest::{Manifest, Predecessor, SignatureFile, Status};

use crate::jobs::sigs_path;
use crate::{AtomicFile, Error, Identity};

fn manifest_error(path: &Path) -> impl FnOnce(coffer_manifest::Error) -> Error + '_ {
    move |source| Error::Manifest {
        path: path.to_path_buf(),
        source,
    }
}

/// Manifests and signatures files are small; anything larger is a mistake.
pub const MAX_FILE_LEN: u64 = 4 << 20;

/// A manifest or signatures file's text, refused past [`MAX_FILE_LEN`] or if not UTF-8.
fn read_text(path: &Path) -> Result<String, Error> {
    let len = std::fs::metadata(path).map_err(Error::io(path))?.len();
    if len > MAX_FILE_LEN {
        return Err(Error::InvalidArgument(format!(
            "{}: larger than {MAX_FILE_LEN} bytes",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    String::from_utf8(bytes)
        .map_err(|_| Error::InvalidArgument(format!("{}: not UTF-8 text", path.display())))
}

/// Reads and validates the manifest at `path`; returns its text (exactly as signed) and it.
pub fn load(path: &Path) -> Result<(String, Manifest), Error> {
    let yaml = read_text(path)?;
    let manifest = Manifest::from_yaml(&yaml).map_err(manifest_error(path))?;
    Ok((yaml, manifest))
}

/// The signatures at `path`, or an empty file for `manifest` if there is none yet.
pub fn load_signatures(path: &Path, manifest: &Manifest) -> Result<SignatureFile, Error> {
    if !path.exists() {
        return Ok(SignatureFile::new(manifest.hash()));
    }
    let text = read_text(path)?;
    SignatureFile::from_json(&text).map_err(manifest_error(path))
}

/// Signs the manifest at `path` as this party (an update: with its `predecessor`, whose
/// governance it changes) and merges the signature into `FILE.sigs`, written whole or not at
/// all. Returns the signatures file's path.
pub fn sign(
    identity: &Identity,
    path: &Path,
    predecessor: Option<&Path>,
) -> Result<PathBuf, Error> {
    let (_, manifest) = load(path)?;
    let predecessor = predecessor.map(|p| load(p).map(|(_, m)| m)).transpose()?;
    let entry = coffer_manifest::sign(
        &manifest,
        predecessor.as_ref(),
        identity.name(),
        identity.signing_key(),
    )
    .map_err(manifest_error(path))?;
    let sigs_file = sigs_path(path, None);
    let mut sigs = load_signatures(&sigs_file, &manifest)?;
    sigs.add(manifest.hash(), entry)
        .map_err(manifest_error(&sigs_file))?;
    let json = sigs.to_json().map_err(manifest_error(&sigs_file))?;
    let mut out = AtomicFile::create(&sigs_file)?;
    out.file()
        .write_all(json.as_bytes())
        .map_err(Error::io(&sigs_file))?;
    out.commit()?;
    Ok(sigs_file)
}

/// Judges the manifest at `path` with its signatures (`sigs`, which must exist, else
/// `FILE.sigs`, if it exists) and, for an
/// update, its predecessors (nearest first, each with its own `.sigs`): who signed, who is
/// missing, whether it is active.
pub fn status(path: &Path, sigs: Option<&Path>, predecessors: &[PathBuf]) -> Result<Status, Error> {
    let (_, manifest) = load(path)?;
    // A named signatures file must exist; the default `FILE.sigs` may not yet.
    let sigs = match sigs {
        Some(named) => {
            let text = read_text(named)?;
            SignatureFile::from_json(&text).map_err(manifest_error(named))?
        }
        None => load_signatures(&sigs_path(path, None), &manifest)?,
    };
    // Judge the chain oldest first: each update's predecessor status feeds the next.
    let mut previous: Option<(Manifest, Status)> = None;
    for p in predecessors.iter().rev() {
        let (_, old) = load(p)?;
        let old_sigs = load_signatures(&sigs_path(p, None), &old)?;
        let old_status = judge(&old, &old_sigs, previous.as_ref()).map_err(manifest_error(p))?;
        previous = Some((old, old_status));
    }
    judge(&manifest, &sigs, previous.as_ref()).map_err(manifest_error(path))
}

fn judge(
    manifest: &Manifest,
    sigs: &SignatureFile,
    previous: Option<&(Manifest, Status)>,
) -> Result<Status, coffer_manifest::Error> {
    let predecessor = previous.map(|(m, s)| Predecessor {
        manifest: m,
        status: s,
    });
    coffer_manifest::status(manifest, sigs, predecessor)
}
