//! `coffer bench`: throughput measured side by side with baselines in the same run, because this
//! machine is shared and noisy. Only ratios are meaningful across runs.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use clap::{Args, Subcommand};
use coffer_crypto::{KeyId, MemoryKeys, SecretKey, sealed};
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Sealed-file and encrypted-Parquet throughput against raw AES-256-GCM and plaintext reads
    Crypto(CryptoArgs),
    /// Key-release throughput and latency over RA-TLS on loopback, against the broker core
    /// and a trivial request measured in the same run
    Broker(super::bench_broker::BrokerBenchArgs),
    /// GBDT training time, AUC and prediction throughput against XGBoost (hist, 2 threads),
    /// measured in the same run
    Gbdt(super::gbdt::BenchGbdtArgs),
    /// The 22 TPC-H queries: DataFusion on plaintext Parquet against the worker path (signed
    /// job, key release over RA-TLS, encrypted Parquet, age output, receipt), alternating
    Tpch(super::bench_tpch::TpchArgs),
}

#[derive(Debug, Args)]
pub struct CryptoArgs {
    /// Size of the in-memory stream to seal and unseal, in MiB
    #[arg(long, default_value_t = 1024)]
    size_mib: usize,
    /// Rows in the Parquet read benchmark
    #[arg(long, default_value_t = 2_000_000)]
    rows: usize,
    /// Interleaved rounds of every method; the best of each is reported
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct CryptoReport {
    bytes: usize,
    /// aws-lc-rs AES-256-GCM over the buffer in place, in 256 KiB calls: the library's peak.
    raw_aes_256_gcm_gbps: f64,
    /// One memcpy of the buffer: what every extra copy costs on this machine.
    memcpy_gbps: f64,
    /// Sealed-file format, in place over the same buffer (`seal_in_place_separate_tags`).
    seal_in_place_gbps: f64,
    unseal_in_place_gbps: f64,
    /// Sealed-file format, `Read` to `Write` (one copy in, one copy out).
    seal_stream_gbps: f64,
    unseal_stream_gbps: f64,
    seal_in_place_vs_raw: f64,
    unseal_in_place_vs_raw: f64,
    seal_stream_vs_raw: f64,
    unseal_stream_vs_raw: f64,
    openssl_speed_gbps: Option<f64>,
    raw_vs_openssl: Option<f64>,
    parquet: coffer_parquet::BenchResult,
    parquet_encrypted_vs_plain: f64,
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Crypto(args) => crypto(&args),
        BenchCommand::Broker(args) => super::bench_broker::run(&args),
        BenchCommand::Gbdt(args) => super::gbdt::bench(&args),
        BenchCommand::Tpch(args) => super::bench_tpch::run(&args),
    }
}

fn crypto(args: &CryptoArgs) -> anyhow::Result<()> {
    let bytes = args
        .size_mib
        .checked_mul(1 << 20)
        .context("--size-mib too large")?;
    let runs = args.runs.max(1);
    let key = SecretKey::generate(256)?;
    let key_id = KeyId::new("bench")?;
    let keys = MemoryKeys::new().with(key_id.clone(), key.clone());
    let plaintext = vec![0x5au8; bytes];
    // Every buffer is allocated and touched before timing, so page faults are billed to nobody.
    let mut work = plaintext.clone();
    let mut sealed_buf = touched(bytes.saturating_add(bytes / 64).saturating_add(4096));
    let mut opened = touched(bytes);

    let (mut raw, mut copy, mut seal_ip, mut unseal_ip, mut seal_st, mut unseal_st) = (
        Duration::MAX,
        Duration::MAX,
        Duration::MAX,
        Duration::MAX,
        Duration::MAX,
        Duration::MAX,
    );
    // Interleaved rounds, best of each: the machine is shared, and a burst of load should hit
    // every method alike.
    for _ in 0..runs {
        raw = raw.min(raw_aes_gcm(&key, &mut work)?);
        copy = copy.min(timed(|| {
            work.copy_from_slice(&plaintext);
            Ok(())
        })?);
        let mut separate = None;
        seal_ip = seal_ip.min(timed(|| {
            let options = sealed::SealOptions::default();
            separate = Some(sealed::seal_in_place_separate_tags(
                &key_id, &key, "bench", options, &mut work,
            )?);
            Ok(())
        })?);
        let separate = separate.context("seal_in_place_separate_tags ran")?;
        unseal_ip = unseal_ip.min(timed(|| {
            sealed::unseal_in_place_separate_tags(
                &keys,
                "bench",
                separate.header(),
                separate.tags(),
                &mut work,
            )?;
            Ok(())
        })?);
        anyhow::ensure!(
            work == plaintext,
            "unsealing in place did not return the plaintext"
        );
        seal_st = seal_st.min(timed(|| {
            sealed_buf.clear();
            sealed::seal(
                &key_id,
                &key,
                "bench",
                plaintext.as_slice(),
                &mut sealed_buf,
            )?;
            Ok(())
        })?);
        unseal_st = unseal_st.min(timed(|| {
            opened.clear();
            sealed::unseal(&keys, "bench", sealed_buf.as_slice(), &mut opened)?;
            Ok(())
        })?);
        anyhow::ensure!(opened == plaintext, "unseal did not return the plaintext");
    }

    let parquet = coffer_parquet::bench_read(args.rows)?;
    let openssl = openssl_speed();
    let gbps = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
    let vs_raw = |d: Duration| raw.as_secs_f64() / d.as_secs_f64();
    let report = CryptoReport {
        bytes,
        raw_aes_256_gcm_gbps: gbps(raw),
        memcpy_gbps: gbps(copy),
        seal_in_place_gbps: gbps(seal_ip),
        unseal_in_place_gbps: gbps(unseal_ip),
        seal_stream_gbps: gbps(seal_st),
        unseal_stream_gbps: gbps(unseal_st),
        seal_in_place_vs_raw: vs_raw(seal_ip),
        unseal_in_place_vs_raw: vs_raw(unseal_ip),
        seal_stream_vs_raw: vs_raw(seal_st),
        unseal_stream_vs_raw: vs_raw(unseal_st),
        openssl_speed_gbps: openssl,
        raw_vs_openssl: openssl.map(|o| gbps(raw) / o),
        parquet_encrypted_vs_plain: parquet.ratio(),
        parquet,
    };
    if args.json {
        return super::print_json(&report);
    }
    print_report(&report);
    Ok(())
}

fn print_report(r: &CryptoReport) {
    println!(
        "coffer bench crypto: {} MiB in memory, one thread, best of interleaved rounds",
        r.bytes >> 20
    );
    println!(
        "  raw AES-256-GCM, aws-lc-rs, in place   {:6.2} GB/s  1.00x",
        r.raw_aes_256_gcm_gbps
    );
    println!(
        "  memcpy (cost of one extra copy)        {:6.2} GB/s",
        r.memcpy_gbps
    );
    println!(
        "  seal,   sealed file, in place          {:6.2} GB/s  {:.2}x raw (target >= 0.85x)",
        r.seal_in_place_gbps, r.seal_in_place_vs_raw
    );
    println!(
        "  unseal, sealed file, in place          {:6.2} GB/s  {:.2}x raw",
        r.unseal_in_place_gbps, r.unseal_in_place_vs_raw
    );
    println!(
        "  seal,   sealed file, Read -> Write     {:6.2} GB/s  {:.2}x raw (two copies)",
        r.seal_stream_gbps, r.seal_stream_vs_raw
    );
    println!(
        "  unseal, sealed file, Read -> Write     {:6.2} GB/s  {:.2}x raw (two copies)",
        r.unseal_stream_gbps, r.unseal_stream_vs_raw
    );
    match (r.openssl_speed_gbps, r.raw_vs_openssl) {
        (Some(o), Some(x)) => println!(
            "  openssl speed -evp aes-256-gcm         {o:6.2} GB/s  (aws-lc-rs is {x:.2}x)"
        ),
        _ => println!("  openssl speed -evp aes-256-gcm         (openssl not found)"),
    }
    let p = &r.parquet;
    println!(
        "  Parquet read, {} rows, median of {}: plaintext {:.1} ms, encrypted {:.1} ms  {:.2}x (target <= 1.2x)",
        p.rows,
        p.runs,
        p.plain.as_secs_f64() * 1e3,
        p.encrypted.as_secs_f64() * 1e3,
        r.parquet_encrypted_vs_plain
    );
}

fn timed(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

/// Encrypts `buf` in place with the library's AES-256-GCM, in 256 KiB calls (the sealed
/// format's default segment size), discarding tags.
fn raw_aes_gcm(key: &SecretKey, buf: &mut [u8]) -> anyhow::Result<Duration> {
    let aead = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.expose_secret())
            .map_err(|_| anyhow::anyhow!("AES key"))?,
    );
    timed(|| {
        for (i, chunk) in buf.chunks_mut(256 << 10).enumerate() {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
            let tag = aead
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::empty(),
                    chunk,
                )
                .map_err(|_| anyhow::anyhow!("AES-GCM seal failed"))?;
            black_box(tag.as_ref());
        }
        Ok(())
    })
}

fn touched(capacity: usize) -> Vec<u8> {
    let mut v = vec![1u8; capacity];
    v.clear();
    v
}

/// `openssl speed -evp aes-256-gcm` on 16 KiB blocks, in GB/s, if openssl is installed.
fn openssl_speed() -> Option<f64> {
    let out = Command::new("openssl")
        .args([
            "speed",
            "-evp",
            "aes-256-gcm",
            "-bytes",
            "16384",
            "-seconds",
            "2",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The result line ends with the throughput in thousands of bytes per second, e.g. "7654321.00k".
    let line = text
        .lines()
        .rev()
        .find(|l| l.to_ascii_lowercase().starts_with("aes-256-gcm"))?;
    let kbps: f64 = line
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(kbps * 1e3 / 1e9)
}
