//! The simulation backend: evidence signed by a simulated platform key kept on disk. **It
//! proves nothing**: anyone who can read the key file can sign any measurement. Verifiers
//! refuse it unless their policy allows simulation.

use std::io::Write;
use std::path::{Path, PathBuf};

use coffer_attest::sim::{measure_file, sign_sim_evidence};
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::{Error, Evidence, EvidenceSource, TeeKind};

/// File name of the simulated platform's secret key (hex seed, mode 0600).
pub const PLATFORM_KEY_FILE: &str = "sim-platform.key";
/// File name of the simulated platform's public key (hex): the `--sim-root` verifiers trust.
pub const PLATFORM_PUB_FILE: &str = "sim-platform.pub";

/// The simulated platform: an Ed25519 key standing in for a CPU's attestation key.
pub struct SimPlatform {
    key: SigningKey,
}

impl std::fmt::Debug for SimPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPlatform")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl SimPlatform {
    /// A platform from a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The public key verifiers pin as a sim root.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Loads the platform key from `dir`, creating it (and its public half) if absent.
    pub fn load_or_create(dir: &Path) -> Result<Self, Error> {
        let key_path = dir.join(PLATFORM_KEY_FILE);
        match std::fs::read_to_string(&key_path) {
            Ok(text) => {
                let seed = Zeroizing::new(hex::decode(text.trim()).map_err(|e| Error::Device {
                    backend: "sim",
                    reason: format!("{}: not hex: {e}", key_path.display()),
                })?);
                let seed: &[u8; 32] = seed.as_slice().try_into().map_err(|_| Error::Device {
                    backend: "sim",
                    reason: format!("{}: not a 32-byte seed", key_path.display()),
                })?;
                Ok(Self::from_seed(seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(dir),
            Err(e) => Err(Error::io(key_path, e)),
        }
    }

    fn create(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom_seed(&mut seed)?;
        let platform = Self::from_seed(&seed);
        write_new(
            &dir.join(PLATFORM_PUB_FILE),
            format!("{}\n", hex::encode(platform.public_key())).as_bytes(),
            false,
        )?;
        let secret = Zeroizing::new(format!("{}\n", hex::encode(seed.as_slice())));
        write_new(&dir.join(PLATFORM_KEY_FILE), secret.as_bytes(), true)?;
        Ok(platform)
    }
}

fn getrandom_seed(seed: &mut [u8; 32]) -> Result<(), Error> {
    getrandom::fill(seed).map_err(|e| Error::Device {
        backend: "sim",
        reason: format!("operating system random number generator: {e}"),
    })
}

/// Writes `bytes` to `path` through a temporary file, refusing to replace an existing file.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    if secret {
        set_owner_only(tmp.path())?;
    }
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(tmp.path().to_path_buf(), e))?;
    tmp.persist_noclobber(path)
        .map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(unix)]
fn set_owner_only(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(path, e))
}

#[cfg(not(unix))]
fn set_owner_only(_: &Path) -> Result<(), Error> {
    Ok(())
}

/// Evidence from the simulated platform for one measurement.
#[derive(Debug)]
pub struct SimSource {
    platform: SimPlatform,
    measurement: [u8; 48],
    debug: bool,
}

impl SimSource {
    /// Evidence for the running executable: its measurement is the SHA-384 of
    /// `std::env::current_exe()`, what `coffer measure` prints for the same file.
    pub fn for_current_exe(platform: SimPlatform) -> Result<Self, Error> {
        let exe =
            std::env::current_exe().map_err(|e| Error::io(PathBuf::from("<current exe>"), e))?;
        let measurement = measure_file(&exe).map_err(|e| Error::io(exe, e))?;
        Ok(Self::with_measurement(platform, measurement))
    }

    /// Evidence claiming an arbitrary measurement (tests, and measuring a slim service binary
    /// that a launcher starts).
    pub fn with_measurement(platform: SimPlatform, measurement: [u8; 48]) -> Self {
        Self {
            platform,
            measurement,
            debug: false,
        }
    }

    /// Claims a debug workload, so that tests can exercise the debug refusal.
    pub fn debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    pub fn measurement(&self) -> [u8; 48] {
        self.measurement
    }

    pub fn platform(&self) -> &SimPlatform {
        &self.platform
    }
}

impl EvidenceSource for SimSource {
    fn tee(&self) -> TeeKind {
        TeeKind::Sim
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, Error> {
        let ev = sign_sim_evidence(
            &self.platform.key,
            &self.measurement,
            report_data,
            self.debug,
        )?;
        Ok(Evidence::Sim(ev))
    }
}
