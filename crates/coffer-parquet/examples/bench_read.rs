//! Encrypted versus plaintext read time, side by side in one run:
//!
//! ```sh
//! cargo run --release -p coffer-parquet --example bench_read -- 2000000
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let r = coffer_parquet::bench_read(rows)?;
    println!(
        "rows {}  runs {}  plain {:.1} ms ({} bytes)  encrypted {:.1} ms ({} bytes)  ratio {:.3}",
        r.rows,
        r.runs,
        r.plain.as_secs_f64() * 1e3,
        r.plain_bytes,
        r.encrypted.as_secs_f64() * 1e3,
        r.encrypted_bytes,
        r.ratio()
    );
    Ok(())
}
