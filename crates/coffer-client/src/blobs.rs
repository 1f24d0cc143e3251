//! Blobs: files sealed under a keyring key (Coffer's seekable sealed format, bound to a
//! logical name), or encrypted to age recipients. Output appears whole or not at all.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use coffer_crypto::{KeyId, KeySource, delivery, sealed};

use crate::{AtomicFile, Error, Home, Identity, Keyring};

fn open(path: &Path) -> Result<BufReader<File>, Error> {
    let file = File::open(path).map_err(Error::io(path))?;
    Ok(BufReader::with_capacity(1 << 20, file))
}

fn file_name(path: &Path) -> Result<String, Error> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::InvalidArgument(format!("{}: no file name; pass a name", path.display()))
        })
}

/// Where a sealed blob goes: under a keyring key, or to age recipients.
#[derive(Debug, Clone)]
pub enum SealTo {
    /// Under keyring key `key`, bound to `name` (default: the output's file name), so the
    /// file does not open under another name.
    Key { key: KeyId, name: Option<String> },
    /// To these age recipients (`age1…`), who open it with `age -d` or [`unseal`].
    Recipients(Vec<String>),
}

/// Seals `src` into `dst`.
pub fn seal(home: &Home, src: &Path, dst: &Path, to: &SealTo) -> Result<(), Error> {
    let input = open(src)?;
    let mut out = AtomicFile::create(dst)?;
    match to {
        SealTo::Key { key, name } => {
            let name = match name {
                Some(n) => n.clone(),
                None => file_name(dst)?,
            };
            let secret = Keyring::open(home)?.key(key)?;
            sealed::seal(key, &secret, &name, input, &mut out)?;
        }
        SealTo::Recipients(recipients) => {
            if recipients.is_empty() {
                return Err(Error::InvalidArgument(
                    "seal needs a key or at least one recipient".into(),
                ));
            }
            let parsed = recipients
                .iter()
                .map(|r| delivery::parse_recipient(r))
                .collect::<Result<Vec<_>, _>>()?;
            delivery::encrypt_to(&parsed, input, &mut out)?;
        }
    }
    out.commit()
}

/// Opens `src` (a sealed file, or an age file addressed to this party) into `dst`. A sealed
/// file must be opened under the name it was sealed with (default: `src`'s file name).
pub fn unseal(home: &Home, src: &Path, dst: &Path, name: Option<&str>) -> Result<(), Error> {
    let mut input = open(src)?;
    let mut prefix = Vec::with_capacity(64);
    (&mut input)
        .take(64)
        .read_to_end(&mut prefix)
        .map_err(Error::io(src))?;
    let input = prefix.as_slice().chain(input);
    let mut out = AtomicFile::create(dst)?;
    if delivery::is_age(&prefix) {
        if name.is_some() {
            return Err(Error::InvalidArgument(
                "a name applies to sealed files; age files bind no name".into(),
            ));
        }
        let identity = Identity::load(home)?;
        delivery::decrypt_with(identity.age_identity(), input, &mut out)?;
    } else {
        let name = match name {
            Some(n) => n.to_owned(),
            None => file_name(src)?,
        };
        let keyring = Keyring::open(home)?;
        sealed::unseal(&keyring, &name, input, &mut out)?;
    }
    out.commit()
}
