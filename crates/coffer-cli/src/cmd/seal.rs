//! `coffer seal` and `coffer unseal`: sealed files under keyring keys, and age delivery.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use coffer_client::{AtomicFile, Home, Identity, Keyring};
use coffer_crypto::{KeyId, KeySource, delivery, sealed};

use crate::exit::Usage;

#[derive(Debug, Args)]
pub struct SealArgs {
    /// The file to seal
    input: PathBuf,
    /// Where to write the sealed file
    #[arg(short, long)]
    output: PathBuf,
    /// Seal under this keyring key (Coffer's seekable sealed format)
    #[arg(long, conflicts_with = "to", required_unless_present = "to")]
    key: Option<KeyId>,
    /// Encrypt to this age recipient (`age1…`) instead; repeat for several
    #[arg(long, value_name = "RECIPIENT")]
    to: Vec<String>,
    /// The logical name bound into the file [default: the output's file name]
    #[arg(long, conflicts_with = "to")]
    name: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// A sealed file, or an age file addressed to this party
    input: PathBuf,
    /// Where to write the plaintext
    #[arg(short, long)]
    output: PathBuf,
    /// The logical name the file was sealed under [default: the input's file name]
    #[arg(long)]
    name: Option<String>,
}

pub fn seal(home: &Home, args: &SealArgs) -> anyhow::Result<()> {
    let input = open(&args.input)?;
    let mut out = AtomicFile::create(&args.output)?;
    if let Some(key_id) = &args.key {
        let name = match &args.name {
            Some(n) => n.clone(),
            None => super::file_name(&args.output)?,
        };
        let key = Keyring::open(home)?.key(key_id)?;
        sealed::seal(key_id, &key, &name, input, &mut out)
            .with_context(|| format!("sealing {}", args.input.display()))?;
    } else {
        let recipients = args
            .to
            .iter()
            .map(|r| delivery::parse_recipient(r))
            .collect::<Result<Vec<_>, _>>()?;
        delivery::encrypt_to(&recipients, input, &mut out)
            .with_context(|| format!("encrypting {} to age recipients", args.input.display()))?;
    }
    out.commit()?;
    Ok(())
}

pub fn unseal(home: &Home, args: &UnsealArgs) -> anyhow::Result<()> {
    let mut input = open(&args.input)?;
    let mut prefix = Vec::with_capacity(64);
    (&mut input).take(64).read_to_end(&mut prefix)?;
    let input = prefix.as_slice().chain(input);
    let mut out = AtomicFile::create(&args.output)?;
    let what = format!("opening {}", args.input.display());
    if delivery::is_age(&prefix) {
        if args.name.is_some() {
            return Err(
                Usage("--name applies to sealed files; age files bind no name".into()).into(),
            );
        }
        let identity = Identity::load(home)?;
        delivery::decrypt_with(identity.age_identity(), input, &mut out).context(what)?;
    } else {
        let name = match &args.name {
            Some(n) => n.clone(),
            None => super::file_name(&args.input)?,
        };
        let keyring = Keyring::open(home)?;
        sealed::unseal(&keyring, &name, input, &mut out).context(what)?;
    }
    out.commit()?;
    Ok(())
}

fn open(path: &PathBuf) -> anyhow::Result<BufReader<File>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 20, file))
}
