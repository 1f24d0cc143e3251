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
pub mod services;
pub mod table;

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

/// Replaces this process with the slim in-TEE binary `name` (`coffer-worker`,
/// `coffer-broker`) that sits beside `coffer`, passing `args`. The slim binary is what a TEE
/// runs and what a manifest pins; `coffer` itself can mint RA-TLS credentials
/// (`coffer attest cert`), so a policy must never admit its measurement.
pub fn exec_service(name: &str, args: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let slim = exe.with_file_name(name);
    if !slim.is_file() {
        return Err(crate::exit::Usage(format!(
            "{name} is not beside {} (build every binary: cargo build --release --bins)",
            exe.display()
        ))
        .into());
    }
    let err = std::process::Command::new(&slim).args(args).exec();
    Err(crate::exit::Usage(format!("starting {}: {err}", slim.display())).into())
}

/// The slim binary `name` beside `coffer`, measured as a sim enclave measures itself (hex).
pub fn slim_measurement(name: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let exe = std::env::current_exe()?.with_file_name(name);
    let m = coffer_attest::sim::measure_file(&exe).with_context(|| {
        format!(
            "measuring {} (build every binary: cargo build --release --bins)",
            exe.display()
        )
    })?;
    Ok(hex::encode(m))
}

/// A single-threaded runtime for the client's futures.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs one client future to completion on a fresh [`runtime`].
pub fn block_on<T, E: Into<anyhow::Error>>(
    future: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    runtime()?.block_on(future).map_err(Into::into)
}
