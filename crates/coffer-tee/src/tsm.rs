//! TDX and SEV-SNP evidence through Linux's configfs-tsm report interface
//! (`Documentation/ABI/testing/configfs-tsm-report`), written here rather than taken from a
//! crate.
//!
//! **Implemented against the kernel's documented ABI only; it has never run on TDX or SEV-SNP
//! hardware.** It is tested against a directory imitating configfs (see `tests/tsm.rs`), which
//! cannot show that a real kernel behaves as its documentation says.
//!
//! # Procedure
//!
//! A report is an entry directory under the root (`/sys/kernel/config/tsm/report`) whose
//! attribute files the kernel provides. [`EvidenceSource::evidence`]:
//!
//! 1. creates an entry `coffer-<pid>-<counter>-<random hex>` with `mkdir` (unless the source
//!    was given an existing entry, below);
//! 2. reads `provider` (`tdx_guest` or `sev_guest`) and refuses a provider other than the one
//!    for the [`TeeKind`] the source was built for — before asking for a report;
//! 3. reads `generation` (g0), writes the 64 bytes of report data to `inblob`, reads `outblob`
//!    (the kernel blocks the read until the report is generated), for SEV-SNP reads `auxblob`
//!    (the certificate table; absent or empty when the host provisioned none), then reads
//!    `generation` again (g1) and requires g1 = g0 + 1: any other value means another writer
//!    changed the entry between our write and our read, so the output may not be ours;
//! 4. parses the output (without verifying it: verifiers do that), requires it to carry the
//!    report data written, and for SEV-SNP splits `auxblob` into certificates, VCEK/VLEK first;
//! 5. removes the entry it created, whether or not the request succeeded. On configfs `rmdir`
//!    of the entry removes its attributes; only if `rmdir` fails with "directory not empty"
//!    (a plain directory imitating configfs, where the attributes are real files) is the entry
//!    removed recursively. Removal errors are ignored: there is nobody to report them to, and
//!    they do not make the evidence wrong.
//!
//! # Existing entries
//!
//! [`TsmSource::with_entry_dir`] uses an entry directory that already exists — created by a
//! privileged launcher that then hands the directory (writable) to an unprivileged service —
//! and neither creates nor removes it. Requests through one such source are serialised; the
//! generation check catches writers outside it. The tests use this to imitate the kernel
//! deterministically: they prepare the attributes themselves and serve `outblob` through a
//! FIFO, so the backend's read blocks until the imitation has seen `inblob`, as with the real
//! kernel.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use coffer_attest::{parse_snp_report, parse_tdx_quote};

use crate::{Error, Evidence, EvidenceSource, TeeKind};

/// Where configfs-tsm reports live on a TDX or SEV-SNP guest.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/tsm/report";

/// Upper bound on any blob read from a TEE interface (as [`coffer_attest::MAX_EVIDENCE_LEN`]).
pub(crate) const MAX_BLOB_LEN: u64 = 64 * 1024;

/// Upper bound on small text attributes (`provider`, `generation`).
const MAX_TEXT_LEN: u64 = 64;

const BACKEND: &str = "tsm";

/// Distinguishes the entries this process creates.
static NEXT_ENTRY: AtomicU64 = AtomicU64::new(0);

/// Reads at most `limit` bytes of `path`; a longer file is an error naming it.
pub(crate) fn read_bounded(
    path: &Path,
    limit: u64,
    backend: &'static str,
) -> Result<Vec<u8>, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > limit) {
        return Err(Error::Device {
            backend,
            reason: format!("{}: longer than {limit} bytes", path.display()),
        });
    }
    Ok(bytes)
}

fn device(reason: impl Into<String>) -> Error {
    Error::Device {
        backend: BACKEND,
        reason: reason.into(),
    }
}

/// TDX quotes or SEV-SNP reports from configfs-tsm.
#[derive(Debug)]
pub struct TsmSource {
    tee: TeeKind,
    location: Location,
    /// Serialises requests through a shared, existing entry.
    lock: Mutex<()>,
}

#[derive(Debug)]
enum Location {
    /// Create (and remove) one entry per request under this root.
    Root(PathBuf),
    /// Use this existing entry for every request.
    Entry(PathBuf),
}

/// The `provider` configfs-tsm reports for `tee`.
fn provider_for(tee: TeeKind) -> Result<&'static str, Error> {
    match tee {
        TeeKind::Tdx => Ok("tdx_guest"),
        TeeKind::Snp => Ok("sev_guest"),
        other => Err(Error::Unsupported(format!(
            "configfs-tsm produces TDX or SEV-SNP evidence, not {other}"
        ))),
    }
}

impl TsmSource {
    /// Evidence of `tee` (TDX or SEV-SNP) from the kernel's configfs-tsm at [`DEFAULT_ROOT`].
    pub fn new(tee: TeeKind) -> Result<Self, Error> {
        Self::with_root(tee, DEFAULT_ROOT)
    }

    /// Evidence of `tee` from configfs-tsm reports created under `root`.
    pub fn with_root(tee: TeeKind, root: impl Into<PathBuf>) -> Result<Self, Error> {
        provider_for(tee)?;
        Ok(Self {
            tee,
            location: Location::Root(root.into()),
            lock: Mutex::new(()),
        })
    }

    /// Evidence of `tee` from the existing report entry `entry` (created by a privileged
    /// launcher); the source neither creates nor removes it.
    pub fn with_entry_dir(tee: TeeKind, entry: impl Into<PathBuf>) -> Result<Self, Error> {
        provider_for(tee)?;
        Ok(Self {
            tee,
            location: Location::Entry(entry.into()),
            lock: Mutex::new(()),
        })
    }

    /// One request through the entry directory `dir`.
    fn request(&self, dir: &Path, report_data: &[u8; 64]) -> Result<Evidence, Error> {
        let provider = read_text(&dir.join("provider"))?;
        let found = match provider.as_str() {
            "tdx_guest" => TeeKind::Tdx,
            "sev_guest" => TeeKind::Snp,
            other => {
                return Err(Error::Unsupported(format!(
                    "configfs-tsm provider {other:?}: only tdx_guest and sev_guest are supported"
                )));
            }
        };
        if found != self.tee {
            return Err(Error::Unsupported(format!(
                "configfs-tsm provider {provider} produces {found} evidence, this source was \
                 built for {}",
                self.tee
            )));
        }

        let generation = dir.join("generation");
        let g0 = read_generation(&generation)?;
        let inblob = dir.join("inblob");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&inblob)
            .map_err(|e| Error::io(&inblob, e))?;
        file.write_all(report_data)
            .and_then(|()| file.flush())
            .map_err(|e| Error::io(&inblob, e))?;
        // configfs commits a binary attribute when the file is released.
        drop(file);
        let out = read_bounded(&dir.join("outblob"), MAX_BLOB_LEN, BACKEND)?;
        let aux = if self.tee == TeeKind::Snp {
            let path = dir.join("auxblob");
            match read_bounded(&path, MAX_BLOB_LEN, BACKEND) {
                Ok(aux) => aux,
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    Vec::new()
                }
                Err(e) => return Err(e),
            }
        } else {
            Vec::new()
        };
        let g1 = read_generation(&generation)?;
        if g0.checked_add(1) != Some(g1) {
            return Err(device(format!(
                "generation changed from {g0} to {g1} instead of by one: another writer raced \
                 this report"
            )));
        }

        let carried = match self.tee {
            TeeKind::Tdx => parse_tdx_quote(&out)?.report_data,
            _ => parse_snp_report(&out)?.report_data,
        };
        if carried != *report_data {
            return Err(device(
                "outblob does not carry the report data written to inblob",
            ));
        }
        match self.tee {
            TeeKind::Tdx => Ok(Evidence::Tdx(out)),
            _ => {
                let mut certs = parse_snp_cert_table(&aux)?;
                certs.sort_by_key(|(kind, _)| *kind);
                Ok(Evidence::Snp {
                    report: out,
                    certs: certs.into_iter().map(|(_, der)| der).collect(),
                })
            }
        }
    }
}

impl EvidenceSource for TsmSource {
    fn tee(&self) -> TeeKind {
        self.tee
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, Error> {
        match &self.location {
            Location::Root(root) => {
                let entry = CreatedEntry::create(root)?;
                self.request(&entry.path, report_data)
            }
            Location::Entry(dir) => {
                let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
                self.request(dir, report_data)
            }
        }
    }
}

/// A report entry this process created; removed on drop.
struct CreatedEntry {
    path: PathBuf,
}

impl CreatedEntry {
    fn create(root: &Path) -> Result<Self, Error> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random)
            .map_err(|e| device(format!("operating system random number generator: {e}")))?;
        let name = format!(
            "coffer-{}-{}-{}",
            std::process::id(),
            NEXT_ENTRY.fetch_add(1, Ordering::Relaxed),
            hex::encode(random)
        );
        let path = root.join(name);
        std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Self { path })
    }
}

impl Drop for CreatedEntry {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.path)
            && e.kind() == std::io::ErrorKind::DirectoryNotEmpty
        {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = read_bounded(path, MAX_TEXT_LEN, BACKEND)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| device(format!("{}: not UTF-8 text", path.display())))?;
    Ok(text.trim().to_owned())
}

fn read_generation(path: &Path) -> Result<u64, Error> {
    let text = read_text(path)?;
    text.parse().map_err(|_| {
        device(format!(
            "{}: {text:?} is not a decimal generation number",
            path.display()
        ))
    })
}

/// What a certificate in an SEV-SNP certificate table is. Sorted VEK first, then ASK, then ARK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CertKind {
    /// Versioned Chip Endorsement Key: the chip-unique key that signed the report.
    Vcek,
    /// Versioned Loaded Endorsement Key: the cloud-provider key that signed the report.
    Vlek,
    /// AMD SEV Key: the intermediate above the VCEK.
    Ask,
    /// AMD Root Key.
    Ark,
}

/// Size of one certificate table entry: GUID, offset, length.
const ENTRY_LEN: usize = 24;

/// A GUID's bytes in RFC 4122 order (every field big-endian).
const fn guid_rfc4122(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let [a0, a1, a2, a3] = a.to_be_bytes();
    let [b0, b1] = b.to_be_bytes();
    let [c0, c1] = c.to_be_bytes();
    let [d0, d1, d2, d3, d4, d5, d6, d7] = d;
    [
        a0, a1, a2, a3, b0, b1, c0, c1, d0, d1, d2, d3, d4, d5, d6, d7,
    ]
}

/// The same GUID in the "mixed-endian" layout of EFI/Microsoft (first three fields little-endian).
const fn guid_mixed(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let [a0, a1, a2, a3] = a.to_le_bytes();
    let [b0, b1] = b.to_le_bytes();
    let [c0, c1] = c.to_le_bytes();
    let [d0, d1, d2, d3, d4, d5, d6, d7] = d;
    [
        a0, a1, a2, a3, b0, b1, c0, c1, d0, d1, d2, d3, d4, d5, d6, d7,
    ]
}

impl CertKind {
    /// Every kind, in sort order.
    pub const ALL: [Self; 4] = [Self::Vcek, Self::Vlek, Self::Ask, Self::Ark];

    /// The GUID fields that name this kind in the GHCB specification.
    const fn guid_fields(self) -> (u32, u16, u16, [u8; 8]) {
        match self {
            Self::Vcek => (
                0x63da_758d,
                0xe664,
                0x4564,
                [0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd],
            ),
            Self::Vlek => (
                0xa807_4bc2,
                0xa25a,
                0x483e,
                [0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1],
            ),
            Self::Ask => (
                0x4ab7_b379,
                0xbbac,
                0x4fe4,
                [0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82],
            ),
            Self::Ark => (
                0xc0b4_06a4,
                0xa803,
                0x4952,
                [0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae],
            ),
        }
    }

    /// The GUID's bytes as a certificate table stores them: RFC 4122 order, as written by
    /// the `sev` crate hosts use and as AMD confirmed for the GHCB table
    /// (google/go-sev-guest#157).
    pub const fn guid_bytes(self) -> [u8; 16] {
        let (a, b, c, d) = self.guid_fields();
        guid_rfc4122(a, b, c, d)
    }

    /// The kind a table entry's GUID names. Besides RFC 4122 order, the mixed-endian EFI
    /// layout of the same GUIDs is accepted: documents disagree on which one firmware uses,
    /// the two cannot be confused for one another, and certificates are verified anyway.
    pub fn from_guid_bytes(guid: &[u8; 16]) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| {
            let (a, b, c, d) = kind.guid_fields();
            *guid == guid_rfc4122(a, b, c, d) || *guid == guid_mixed(a, b, c, d)
        })
    }
}

/// Splits an SEV-SNP certificate table (the `auxblob` of a `sev_guest` report; the GHCB
/// extended-report certificate table) into its known certificates, in table order.
///
/// The table is a sequence of 24-byte entries — GUID (16 bytes), offset (u32 LE), length
/// (u32 LE), offsets counted from the start of the table — ended by an all-zero entry. Entries
/// with GUIDs other than [`CertKind`]'s are skipped. An empty input is an empty table (the
/// host provisioned no certificates). A missing terminator, a certificate outside the table,
/// an empty certificate, a duplicate kind, or a zero GUID with a non-zero offset or length is
/// an error.
pub fn parse_snp_cert_table(bytes: &[u8]) -> Result<Vec<(CertKind, Vec<u8>)>, Error> {
    let mut certs: Vec<(CertKind, Vec<u8>)> = Vec::new();
    if bytes.is_empty() {
        return Ok(certs);
    }
    for (index, entry) in bytes.chunks(ENTRY_LEN).enumerate() {
        let Ok(entry) = <&[u8; ENTRY_LEN]>::try_from(entry) else {
            return Err(device(format!(
                "SEV certificate table: entry {index} is truncated"
            )));
        };
        let [guid @ .., o0, o1, o2, o3, l0, l1, l2, l3] = *entry;
        let guid: [u8; 16] = guid;
        let offset = u32::from_le_bytes([o0, o1, o2, o3]);
        let length = u32::from_le_bytes([l0, l1, l2, l3]);
        if guid == [0; 16] {
            if offset != 0 || length != 0 {
                return Err(device(format!(
                    "SEV certificate table: entry {index} has a zero GUID but offset {offset} \
                     and length {length}"
                )));
            }
            return Ok(certs);
        }
        let Some(kind) = CertKind::from_guid_bytes(&guid) else {
            continue;
        };
        if length == 0 {
            return Err(device(format!(
                "SEV certificate table: entry {index} ({kind:?}) is empty"
            )));
        }
        let range = usize::try_from(offset).ok().and_then(|start| {
            let end = start.checked_add(usize::try_from(length).ok()?)?;
            bytes.get(start..end)
        });
        let Some(der) = range else {
            return Err(device(format!(
                "SEV certificate table: entry {index} ({kind:?}) at offset {offset}, length \
                 {length} lies outside the {}-byte table",
                bytes.len()
            )));
        };
        if certs.iter().any(|(k, _)| *k == kind) {
            return Err(device(format!(
                "SEV certificate table: more than one {kind:?} entry"
            )));
        }
        certs.push((kind, der.to_vec()));
    }
    Err(device(
        "SEV certificate table: truncated, no terminating entry",
    ))
}
