//! `coffer init` and `coffer identity`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use coffer_client::{AtomicFile, Home, Identity};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The party's name, as collaboration manifests will use it
    #[arg(long)]
    name: String,
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Print the name, the signing public key, the age recipient and the age identity file
    Show {
        /// Print JSON: name, signing_key, recipient, age_identity_file
        #[arg(long)]
        json: bool,
    },
    /// Write the public identity, which parties exchange
    Export {
        /// Where to write it
        #[arg(short, long)]
        output: PathBuf,
    },
}

pub fn init(home: &Home, args: &InitArgs) -> anyhow::Result<()> {
    let identity = Identity::init(home, &args.name)?;
    let public = identity.public();
    println!(
        "Created identity {:?} in {}",
        public.name,
        home.root().display()
    );
    println!("  signing key: {}", public.signing_key);
    println!("  recipient:   {}", public.recipient);
    Ok(())
}

pub fn run(home: &Home, command: IdentityCommand) -> anyhow::Result<()> {
    let identity = Identity::load(home)?;
    let public = identity.public();
    match command {
        IdentityCommand::Show { json: true } => super::print_json(&serde_json::json!({
            "name": public.name,
            "signing_key": public.signing_key,
            "recipient": public.recipient,
            "age_identity_file": home.age_identity_path(),
        })),
        IdentityCommand::Show { json: false } => {
            println!("name:              {}", public.name);
            println!("signing key:       {}", public.signing_key);
            println!("recipient:         {}", public.recipient);
            println!("age identity file: {}", home.age_identity_path().display());
            Ok(())
        }
        IdentityCommand::Export { output } => {
            let mut file = AtomicFile::create(&output)?;
            serde_json::to_writer_pretty(&mut file, &public)?;
            std::io::Write::write_all(&mut file, b"\n")?;
            file.commit()
                .with_context(|| format!("writing {}", output.display()))
        }
    }
}
