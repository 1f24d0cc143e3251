//! Delivery to people: the age format (X25519 recipients).
//!
//! Output written here is a plain age v1 file, so recipients can decrypt it with Coffer or with
//! the `age` command (`age -d -i IDENTITY_FILE`). Input may be binary or ASCII-armored.

use std::io::{self, BufReader, Read, Write};

use age::armor::ArmoredReader;
use age::x25519;

use crate::Error;

/// The first bytes of a binary age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// The first bytes of an armored age file.
pub const AGE_ARMOR_MAGIC: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// Whether `prefix` (the first bytes of a file) looks like an age file, binary or armored.
pub fn is_age(prefix: &[u8]) -> bool {
    prefix.starts_with(AGE_MAGIC) || prefix.starts_with(AGE_ARMOR_MAGIC)
}

/// Parses an `age1…` recipient.
pub fn parse_recipient(text: &str) -> Result<x25519::Recipient, Error> {
    text.trim()
        .parse::<x25519::Recipient>()
        .map_err(|reason| Error::Malformed {
            what: "age recipient",
            reason: format!("{text:?}: {reason}"),
        })
}

/// Encrypts `input` to every recipient, writing a binary age file to `output`.
///
/// Returns the number of plaintext bytes. An empty recipient list is refused: it would produce
/// a file nobody can open.
pub fn encrypt_to<R: Read, W: Write>(
    recipients: &[x25519::Recipient],
    mut input: R,
    output: W,
) -> Result<u64, Error> {
    if recipients.is_empty() {
        return Err(Error::ApiMisuse(
            "age delivery needs at least one recipient".into(),
        ));
    }
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| Error::Internal(format!("age encryptor: {e}")))?;
    let mut writer = encryptor.wrap_output(output)?;
    let copied = io::copy(&mut input, &mut writer)?;
    writer.finish()?;
    Ok(copied)
}

/// Decrypts an age file (binary or armored) with `identity`, writing the plaintext to `output`.
///
/// Plaintext is written as it is authenticated, chunk by chunk (64 KiB), so on failure `output`
/// may hold a verified prefix: callers that must not leave partial output write to a temporary
/// file and rename it on success.
pub fn decrypt_with<R: Read, W: Write>(
    identity: &x25519::Identity,
    input: R,
    mut output: W,
) -> Result<u64, Error> {
    let armored = ArmoredReader::new(BufReader::new(input));
    let decryptor = age::Decryptor::new_buffered(BufReader::new(armored)).map_err(age_error)?;
    if decryptor.is_scrypt() {
        return Err(Error::ApiMisuse(
            "this age file is passphrase-encrypted; Coffer delivers only to recipients".into(),
        ));
    }
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(age_error)?;
    io::copy(&mut reader, &mut output).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => Error::AuthenticationFailed {
            what: format!("age payload: {e}"),
        },
        _ => Error::Io(e),
    })
}

fn age_error(e: age::DecryptError) -> Error {
    use age::DecryptError as E;
    match e {
        E::NoMatchingKeys => Error::AuthenticationFailed {
            what: "age recipients: no stanza is addressed to this identity (wrong recipient)"
                .into(),
        },
        E::InvalidMac => Error::AuthenticationFailed {
            what: "age header MAC".into(),
        },
        E::DecryptionFailed | E::KeyDecryptionFailed => Error::AuthenticationFailed {
            what: format!("age: {e}"),
        },
        E::InvalidHeader | E::UnknownFormat => Error::Malformed {
            what: "age header",
            reason: e.to_string(),
        },
        E::Io(io) if io.kind() == io::ErrorKind::InvalidData => Error::Malformed {
            what: "age file",
            reason: io.to_string(),
        },
        E::Io(io) => Error::Io(io),
        other => Error::Malformed {
            what: "age file",
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(identity: &x25519::Identity, data: &[u8]) -> Result<Vec<u8>, Error> {
        let mut sealed = Vec::new();
        encrypt_to(&[identity.to_public()], data, &mut sealed)?;
        let mut plain = Vec::new();
        decrypt_with(identity, sealed.as_slice(), &mut plain)?;
        Ok(plain)
    }

    #[test]
    fn round_trips_to_the_recipient() {
        let id = x25519::Identity::generate();
        let data = vec![7u8; 200_000];
        assert_eq!(round_trip(&id, &data).unwrap(), data);
        assert_eq!(round_trip(&id, b"").unwrap(), b"");
    }

    #[test]
    fn wrong_recipient_is_named() {
        let alice = x25519::Identity::generate();
        let mallory = x25519::Identity::generate();
        let mut sealed = Vec::new();
        encrypt_to(&[alice.to_public()], &b"secret"[..], &mut sealed).unwrap();
        let err = decrypt_with(&mallory, sealed.as_slice(), Vec::new()).unwrap_err();
        assert!(err.to_string().contains("wrong recipient"), "{err}");
    }

    #[test]
    fn every_flipped_byte_fails() {
        let id = x25519::Identity::generate();
        let mut sealed = Vec::new();
        encrypt_to(&[id.to_public()], &b"0123456789abcdef"[..], &mut sealed).unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                decrypt_with(&id, bad.as_slice(), Vec::new()).is_err(),
                "flip at {i}"
            );
        }
        for cut in [0, 10, sealed.len() - 1] {
            assert!(
                decrypt_with(&id, &sealed[..cut], Vec::new()).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn recipients_are_parsed_strictly() {
        let id = x25519::Identity::generate();
        let text = id.to_public().to_string();
        assert!(parse_recipient(&text).is_ok());
        assert!(parse_recipient("age1xyz").is_err());
        assert!(encrypt_to(&[], &b""[..], Vec::new()).is_err());
    }
}
