//! `coffer encrypt`, `decrypt`, `inspect` against PyArrow's `CryptoFactory` (the real peer),
//! with random data and keys the tests have never seen.

use std::fs;

use serde_json::{Value, json};

use crate::common::{Party, only_files};

/// The PyArrow peer: coffer-parquet's `CryptoFactory` script.
use crate::py_peer::peer as pyarrow;

struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("COFFER_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("COFFER_TEST_SEED={seed}");
        Self(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn hex_key(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.next() as u8))
            .collect()
    }
    fn maybe(&mut self, v: Value) -> Value {
        if self.next().is_multiple_of(5) {
            Value::Null
        } else {
            v
        }
    }
}

/// Random columns in the peer's schema (floats as IEEE bit patterns, timestamps as µs).
fn random_columns(rng: &mut Rng, rows: usize) -> Value {
    let words = [
        "Zürich",
        "東京",
        "naïve café",
        "plain",
        "",
        "emoji 🔐",
        "a,b \"quoted\"",
    ];
    let mut col = |f: &mut dyn FnMut(&mut Rng) -> Value| -> Vec<Value> {
        (0..rows)
            .map(|_| {
                let v = f(rng);
                rng.maybe(v)
            })
            .collect()
    };
    json!({
        "i64": col(&mut |r| json!(r.next() as i64)),
        "i32": col(&mut |r| json!(r.next() as i32)),
        "f64": col(&mut |r| json!((r.next() % 1_000_000) as f64 / 7.0).as_f64().map(|f| json!(f.to_bits())).unwrap()),
        "f32": col(&mut |r| json!(((r.next() % 100_000) as f32 / 3.0).to_bits())),
        "s": col(&mut |r| json!(words[(r.next() % words.len() as u64) as usize])),
        "b": col(&mut |r| json!(r.next() % 2 == 0)),
        "ts": col(&mut |r| json!((r.next() % 4_000_000_000_000_000) as i64)),
    })
}

#[test]
fn pyarrow_to_coffer_to_pyarrow_keeps_every_row() {
    let mut rng = Rng::new();
    let p = Party::init("alpha");
    for (double, plaintext_footer) in [(true, false), (false, false), (true, true), (false, true)] {
        let (footer, pii) = (rng.hex_key(16), rng.hex_key(32));
        let columns = random_columns(&mut rng, 200);
        let written = pyarrow(&json!({
            "mode": "write", "path": p.path("from_pyarrow.parquet"),
            "keys": {"m-footer": footer, "m-pii": pii}, "footer_key": "m-footer",
            "column_keys": {"m-pii": ["s", "ts"]}, "uniform": false,
            "double_wrapping": double, "plaintext_footer": plaintext_footer,
            "data_key_bits": 128, "columns": columns,
        }));
        assert_eq!(written, json!({}));
        let _ = fs::remove_file(p.home().join("keyring.json"));
        p.ok(&["key", "import", "m-footer", "--hex", &footer]);
        p.ok(&["key", "import", "m-pii", "--hex", &pii]);

        // PyArrow wrote it; Coffer decrypts it.
        p.ok(&["decrypt", "from_pyarrow.parquet", "-o", "plain.parquet"]);
        let inspected: Value =
            serde_json::from_str(&p.ok(&["inspect", "plain.parquet", "--json"])).unwrap();
        assert_eq!(inspected["num_rows"], 200, "{inspected}");
        let plain = pyarrow(&json!({"mode": "read", "path": p.path("plain.parquet"), "keys": {}}));
        assert_eq!(
            plain["columns"], columns,
            "double={double} plaintext_footer={plaintext_footer}"
        );

        // Coffer encrypts it again under other keys; PyArrow reads it.
        let again = rng.hex_key(32);
        p.ok(&["key", "import", "m-again", "--hex", &again]);
        let wrapping = if double { "true" } else { "false" };
        let mut args = vec![
            "encrypt",
            "plain.parquet",
            "-o",
            "from_coffer.parquet",
            "--footer-key",
            "m-again",
            "--column-keys",
            "m-pii:s,ts",
            "--double-wrapping",
            wrapping,
        ];
        if plaintext_footer {
            args.push("--plaintext-footer");
        }
        p.ok(&args);
        let back = pyarrow(
            &json!({"mode": "read", "path": p.path("from_coffer.parquet"),
            "keys": {"m-again": again, "m-pii": pii}}),
        );
        assert_eq!(
            back["columns"], columns,
            "double={double} plaintext_footer={plaintext_footer}"
        );
    }
}

#[test]
fn csv_encrypts_for_pyarrow_and_decrypts_back() {
    let mut rng = Rng::new();
    let p = Party::init("alpha");
    let master = rng.hex_key(32);
    p.ok(&["key", "import", "master", "--hex", &master]);
    fs::write(p.path("schema.json"), r#"{"fields":[{"name":"i64","type":"int64"},{"name":"s","type":"utf8"},
        {"name":"b","type":"bool"},{"name":"ts","type":"timestamp_us","timezone":"UTC"},{"name":"f64","type":"float64"}]}"#).unwrap();
    let csv = "i64,s,b,ts,f64\n1,Zürich,true,2026-11-21T10:00:00Z,0.5\n,東京 \"q\",,2026-01-01T00:00:00.000001Z,\n-7,,false,,1e300\n";
    fs::write(p.path("in.csv"), csv).unwrap();
    p.ok(&[
        "encrypt",
        "in.csv",
        "-o",
        "t.parquet",
        "--footer-key",
        "master",
        "--schema",
        "schema.json",
    ]);
    let read =
        pyarrow(&json!({"mode": "read", "path": p.path("t.parquet"), "keys": {"master": master}}));
    assert_eq!(read["columns"]["i64"], json!([1, null, -7]));
    assert_eq!(read["columns"]["s"], json!(["Zürich", "東京 \"q\"", null]));
    assert_eq!(read["columns"]["b"], json!([true, null, false]));
    assert_eq!(
        read["columns"]["ts"],
        json!([1_795_255_200_000_000i64, 1_767_225_600_000_001i64, null])
    );
    assert_eq!(
        read["columns"]["f64"],
        json!([0.5f64.to_bits(), null, 1e300f64.to_bits()])
    );

    p.ok(&["decrypt", "t.parquet", "-o", "out.csv"]);
    p.ok(&[
        "encrypt",
        "out.csv",
        "-o",
        "t2.parquet",
        "--footer-key",
        "master",
        "--schema",
        "schema.json",
    ]);
    let reread =
        pyarrow(&json!({"mode": "read", "path": p.path("t2.parquet"), "keys": {"master": master}}));
    assert_eq!(reread["columns"], read["columns"]);
}

#[test]
fn tables_refuse_tampering_wrong_keys_and_missing_keys() {
    let p = Party::init("alpha");
    p.ok(&["key", "new", "master"]);
    fs::write(p.path("in.csv"), "id,name\n1,a\n2,b\n3,c\n").unwrap();
    p.ok(&[
        "encrypt",
        "in.csv",
        "-o",
        "t.parquet",
        "--footer-key",
        "master",
    ]);
    let good = fs::read(p.path("t.parquet")).unwrap();
    let files = ["home", "in.csv", "t.parquet"];
    only_files(p.dir.path(), &files);

    // The key is named when it is missing; a same-named other key is refused.
    let other = Party::init("beta");
    fs::write(other.path("t.parquet"), &good).unwrap();
    let err = other.fails(1, &["decrypt", "t.parquet", "-o", "out.csv"]);
    assert!(err.contains("master"), "{err}");
    other.ok(&["key", "new", "master"]);
    let err = other.fails(1, &["decrypt", "t.parquet", "-o", "out.csv"]);
    assert!(err.contains("master"), "{err}");
    only_files(other.dir.path(), &["home", "t.parquet"]);

    // Flipped bytes anywhere, truncations and appended bytes: refused, nothing written.
    for at in (0..good.len()).step_by(7) {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        fs::write(p.path("t.parquet"), &bad).unwrap();
        let out = p.run(&["decrypt", "t.parquet", "-o", "out.csv"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "flip at {at}: {stderr}");
        if out.status.success() {
            // Only bytes nobody reads (see coffer-parquet's tamper tests) may change harmlessly.
            assert_eq!(
                fs::read_to_string(p.path("out.csv")).unwrap(),
                "id,name\n1,a\n2,b\n3,c\n",
                "flip at {at}"
            );
            fs::remove_file(p.path("out.csv")).unwrap();
        } else {
            assert_eq!(out.status.code(), Some(1), "flip at {at}: {stderr}");
        }
        only_files(p.dir.path(), &files);
    }
    for cut in [0, 4, good.len() / 2, good.len() - 8, good.len() - 1] {
        fs::write(p.path("t.parquet"), &good[..cut]).unwrap();
        p.fails(1, &["decrypt", "t.parquet", "-o", "out.csv"]);
        only_files(p.dir.path(), &files);
    }
    let mut appended = good.clone();
    appended.extend_from_slice(b"PARE");
    fs::write(p.path("t.parquet"), &appended).unwrap();
    p.fails(1, &["decrypt", "t.parquet", "-o", "out.csv"]);

    // Inspect never needs a key: a party without it still learns what the file is.
    fs::write(other.path("t.parquet"), &good).unwrap();
    let nokey = Party::init("gamma");
    fs::write(nokey.path("t.parquet"), &good).unwrap();
    let shown = nokey.ok(&["inspect", "t.parquet", "--json"]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["format"], "encrypted_footer", "{shown}");
    assert!(shown.to_string().contains("master"), "{shown}");
    p.fails(2, &["decrypt", "t.parquet", "-o", "out.txt"]);
}
