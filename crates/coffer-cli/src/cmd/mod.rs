//! One module per command group.

pub mod attest;
pub mod bench;
pub mod bench_broker;
pub mod bench_tpch;
pub mod broker;
pub mod demo;
pub mod gbdt;
pub mod identity;
pub mod jobs;
pub mod keys;
pub mod manifest;
pub mod seal;
pub mod table;

use std::path::Path;

/// Prints `value` as pretty JSON on stdout; a closed stdout (`| head`) is an I/O error, not a
/// panic.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The file name of `path`, as the default logical name of a sealed file.
pub fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            crate::exit::Usage(format!("{}: no file name; pass --name", path.display())).into()
        })
}
