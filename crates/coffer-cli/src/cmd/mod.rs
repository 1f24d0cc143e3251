//! One module per command group.

pub mod bench;
pub mod identity;
pub mod keys;
pub mod seal;
pub mod table;

use std::path::Path;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
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
