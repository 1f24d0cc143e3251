//! `coffer key`.

use clap::Subcommand;
use coffer_client::{Home, Keyring};
use coffer_crypto::{KeyId, SecretKey};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a fresh random key
    New {
        /// The key's id, e.g. `alpha.patients`
        id: KeyId,
        /// Key size
        #[arg(long, default_value_t = 256, value_parser = parse_bits)]
        bits: usize,
    },
    /// Import existing key material (for example a master key shared with a PyArrow KMS)
    Import {
        /// The key's id
        id: KeyId,
        /// The key as hex: 16, 24 or 32 bytes
        #[arg(long)]
        hex: String,
    },
    /// Upload a dataset's key to a pinned broker, bound to a manifest (owner only)
    Grant(super::broker::GrantArgs),
    /// Revoke this party's key grant for a dataset under a manifest (owner only): the broker
    /// deletes the sealed key, audits the revocation and releases the key no more
    Revoke(super::broker::RevokeArgs),
    /// List key ids and sizes (never the keys)
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(home: &Home, command: KeyCommand) -> anyhow::Result<()> {
    match &command {
        KeyCommand::Grant(args) => return super::broker::grant(home, args),
        KeyCommand::Revoke(args) => return super::broker::revoke(home, args),
        _ => {}
    }
    let mut ring = Keyring::open(home)?;
    match command {
        KeyCommand::New { id, bits } => {
            ring.insert(id.clone(), SecretKey::generate(bits)?)?;
            println!("Created {bits}-bit key {id}");
        }
        KeyCommand::Import { id, hex } => {
            let key = SecretKey::from_hex(&hex)?;
            let bits = key.bits();
            ring.insert(id.clone(), key)?;
            println!("Imported {bits}-bit key {id}");
        }
        KeyCommand::List { json: true } => super::print_json(&ring.list())?,
        KeyCommand::List { json: false } => {
            for info in ring.list() {
                println!("{}\t{} bits", info.id, info.bits);
            }
        }
        KeyCommand::Grant(_) | KeyCommand::Revoke(_) => {}
    }
    Ok(())
}

fn parse_bits(text: &str) -> Result<usize, String> {
    match text {
        "128" => Ok(128),
        "192" => Ok(192),
        "256" => Ok(256),
        _ => Err("use 128, 192 or 256".into()),
    }
}
