//! `coffer attest` and `coffer measure`: sim round trips, recorded hardware evidence, RA-TLS
//! certificates.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha384};

use crate::common::{Party, args, only_files};

const JULY_2025: &str = "2025-07-01T00:00:00Z";

fn testdata(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel);
    assert!(path.exists(), "missing test data {}", path.display());
    path.to_str().unwrap().to_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Runs a command expected to fail with `code` and returns its JSON stdout.
fn refused_json(p: &Party, args: &[&str]) -> Value {
    let out = p.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "coffer {args:?}: stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "coffer {args:?} panicked:\n{stderr}"
    );
    json(&String::from_utf8_lossy(&out.stdout))
}

fn checks(v: &Value) -> Vec<String> {
    v["failed_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap().to_owned())
        .collect()
}

const KEYS: [&str; 9] = [
    "tee",
    "verified",
    "tcb_status",
    "advisories",
    "debug",
    "measurements",
    "report_data",
    "accepted",
    "failed_checks",
];

/// The report has exactly the documented keys, plus `extra`.
fn assert_keys(v: &Value, extra: &[&str]) {
    let mut found: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    found.sort_unstable();
    let mut expected: Vec<&str> = KEYS.iter().chain(extra).copied().collect();
    expected.sort_unstable();
    assert_eq!(found, expected, "{v:#}");
}

fn bin_measurement() -> String {
    hex::encode(Sha384::digest(
        fs::read(env!("CARGO_BIN_EXE_coffer")).unwrap(),
    ))
}

fn sim_policy(p: &Party, name: &str, allow_simulation: bool, measurement: &str) -> String {
    let text = format!(
        "tee: [sim]\nallow_simulation: {allow_simulation}\nmeasurements:\n  - \"sim:measurement={measurement}\"\n"
    );
    fs::write(p.path(name), text).unwrap();
    name.to_owned()
}

#[test]
fn attest_measure_prints_sha384() {
    let p = Party::init("alice");
    let data = b"some executable".repeat(1000);
    fs::write(p.path("prog"), &data).unwrap();
    let expected = hex::encode(Sha384::digest(&data));
    assert_eq!(p.ok(&["measure", "prog"]).trim(), expected);
    let v = json(&p.ok(&args("measure prog --json")));
    assert_eq!(v["measurement"], expected.as_str());
    assert_eq!(v["rule"], format!("sim:measurement={expected}").as_str());
    assert_eq!(v["file"], "prog");
    assert_eq!(
        p.ok(&["measure", env!("CARGO_BIN_EXE_coffer")]).trim(),
        bin_measurement()
    );
    p.fails(2, &["measure", "absent"]);
}

#[test]
fn attest_sim_round_trip() {
    let p = Party::init("alice");
    let rd = format!("00ff{}", "ab".repeat(10));
    let out = p.run(&[
        "attest",
        "evidence",
        "--tee",
        "sim",
        "--report-data",
        &rd,
        "-o",
        "ev.bin",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("WARNING: simulated evidence proves nothing"),
        "{err}"
    );
    assert!(p.home().join("sim-platform.pub").exists());

    let out = p.run(&args("attest verify --tee sim --evidence ev.bin"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING: simulated evidence"));
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_keys(&v, &["simulated"]);
    assert_eq!(v["tee"], "sim");
    assert_eq!(v["verified"], true);
    assert_eq!(v["simulated"], true);
    assert_eq!(v["debug"], false);
    assert_eq!(v["tcb_status"], Value::Null);
    assert_eq!(v["accepted"], Value::Null);
    assert_eq!(v["failed_checks"], serde_json::json!([]));
    let m = bin_measurement();
    assert_eq!(v["measurements"]["measurement"], m.as_str());
    let padded = format!("{rd}{}", "00".repeat(64 - rd.len() / 2));
    assert_eq!(v["report_data"], padded.as_str());

    // Policies.
    sim_policy(&p, "ok.yaml", true, &m);
    let v = json(&p.ok(&args(
        "attest verify --tee sim --evidence ev.bin --policy ok.yaml",
    )));
    assert_eq!(v["accepted"], true);
    sim_policy(&p, "nosim.yaml", false, &m);
    let v = refused_json(
        &p,
        &args("attest verify --tee sim --evidence ev.bin --policy nosim.yaml"),
    );
    assert_eq!(v["verified"], true);
    assert_eq!(v["accepted"], false);
    assert_eq!(checks(&v), ["simulation"]);
    sim_policy(&p, "wrong.yaml", true, &"11".repeat(48));
    let v = refused_json(
        &p,
        &args("attest verify --tee sim --evidence ev.bin --policy wrong.yaml"),
    );
    assert_eq!(checks(&v), ["measurement"]);

    // A debug enclave.
    p.ok(&args(
        "attest evidence --tee sim --report-data 01 -o debug.bin --debug",
    ));
    let v = json(&p.ok(&args("attest verify --tee sim --evidence debug.bin")));
    assert_eq!(v["debug"], true);
    let v = refused_json(
        &p,
        &args("attest verify --tee sim --evidence debug.bin --policy ok.yaml"),
    );
    assert_eq!(checks(&v), ["debug"]);

    // Hex and base64 encodings.
    let raw = fs::read(p.path("ev.bin")).unwrap();
    fs::write(p.path("ev.hex"), format!("0x{}\n", hex::encode(&raw))).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let wrapped: Vec<String> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    fs::write(p.path("ev.b64"), wrapped.join("\n") + "\n").unwrap();
    for f in ["ev.hex", "ev.b64"] {
        let v = json(&p.ok(&[
            "attest",
            "verify",
            "--tee",
            "sim",
            "--evidence",
            f,
            "--policy",
            "ok.yaml",
        ]));
        assert_eq!(v["measurements"]["measurement"], m.as_str(), "{f}");
    }

    // Tampering: every position refused, none panics.
    for at in [0, 10, raw.len() / 2, raw.len() - 1] {
        let mut bad = raw.clone();
        bad[at] ^= 0x01;
        fs::write(p.path("bad.bin"), &bad).unwrap();
        let v = refused_json(&p, &args("attest verify --tee sim --evidence bad.bin"));
        assert_eq!(v["verified"], false, "byte {at}");
        assert_eq!(v["measurements"], Value::Null);
        assert_eq!(v["report_data"], Value::Null);
        assert_eq!(checks(&v).len(), 1, "{v:#}");
    }

    // Another platform's root.
    let bob = Party::init("bob");
    bob.ok(&args(
        "attest evidence --tee sim --report-data 00 -o ev.bin",
    ));
    let bob_root = bob.home().join("sim-platform.pub");
    let v = refused_json(
        &p,
        &[
            "attest",
            "verify",
            "--tee",
            "sim",
            "--evidence",
            "ev.bin",
            "--sim-root",
            bob_root.to_str().unwrap(),
        ],
    );
    assert_eq!(checks(&v), ["certificate_chain"]);
    // Bob's evidence under Alice's root, by default.
    let bob_ev = bob.path("ev.bin");
    let v = refused_json(
        &p,
        &[
            "attest",
            "verify",
            "--tee",
            "sim",
            "--evidence",
            bob_ev.to_str().unwrap(),
        ],
    );
    assert_eq!(v["verified"], false);
    // Bob's evidence under his own root, given as 32 raw bytes.
    let raw_root = hex::decode(fs::read_to_string(&bob_root).unwrap().trim()).unwrap();
    fs::write(p.path("bob.root"), raw_root).unwrap();
    p.ok(&[
        "attest",
        "verify",
        "--tee",
        "sim",
        "--evidence",
        bob_ev.to_str().unwrap(),
        "--sim-root",
        "bob.root",
    ]);
    // No sim root at all: a party that never made sim evidence.
    let carol = Party::init("carol");
    let v = refused_json(
        &carol,
        &[
            "attest",
            "verify",
            "--tee",
            "sim",
            "--evidence",
            bob_ev.to_str().unwrap(),
        ],
    );
    assert_eq!(checks(&v), ["missing"]);
}

#[test]
fn attest_usage_and_io_errors() {
    let p = Party::init("alice");
    p.ok(&args(
        "attest evidence --tee sim --report-data 00 -o ev.bin",
    ));
    p.fails(2, &args("attest verify --tee sim --evidence absent.bin"));
    p.fails(
        2,
        &args("attest verify --tee sim --evidence ev.bin --policy absent.yaml"),
    );
    fs::write(p.path("bad.yaml"), "tee: [sim]\nbogus: 1\n").unwrap();
    p.fails(
        2,
        &args("attest verify --tee sim --evidence ev.bin --policy bad.yaml"),
    );
    fs::write(p.path("bad.json"), "{").unwrap();
    p.fails(
        2,
        &args("attest verify --tee sgx --evidence ev.bin --collateral bad.json"),
    );
    p.fails(
        2,
        &args("attest verify --tee sim --evidence ev.bin --certs ev.bin"),
    );
    p.fails(
        2,
        &args("attest verify --tee sim --evidence ev.bin --at yesterday"),
    );
    p.fails(2, &args("attest verify --tee sgy --evidence ev.bin"));
    p.fails(
        2,
        &[
            "attest",
            "evidence",
            "--tee",
            "sim",
            "--report-data",
            &"00".repeat(65),
            "-o",
            "x.bin",
        ],
    );
    p.fails(
        2,
        &args("attest evidence --tee nitro --report-data 00 -o x.bin"),
    );
    p.fails(
        2,
        &args("attest evidence --tee gramine --report-data 00 --debug -o x.bin"),
    );
    fs::write(p.path("short.root"), "abcd").unwrap();
    p.fails(
        2,
        &args("attest verify --tee sim --evidence ev.bin --sim-root short.root"),
    );
    only_files(
        p.dir.path(),
        &args("home ev.bin bad.yaml bad.json short.root"),
    );
    // Malformed evidence is a refusal, not a usage error.
    fs::write(p.path("junk.bin"), b"\x00\x01 not evidence").unwrap();
    for tee in ["sgx", "tdx", "snp", "nitro", "sim"] {
        let v = refused_json(
            &p,
            &["attest", "verify", "--tee", tee, "--evidence", "junk.bin"],
        );
        assert_eq!(v["verified"], false, "{tee}");
        assert_eq!(v["tee"], tee);
    }
}

#[test]
fn attest_recorded_sgx() {
    let p = Party::init("alice");
    let quote = testdata("sgx_dcap/dcap-qvl/sgx_quote");
    let collateral = testdata("sgx_dcap/dcap-qvl/sgx_quote_collateral.json");
    let v = json(&p.ok(&[
        "attest",
        "verify",
        "--tee",
        "sgx",
        "--evidence",
        &quote,
        "--collateral",
        &collateral,
        "--at",
        JULY_2025,
    ]));
    assert_keys(&v, &[]);
    assert_eq!(v["verified"], true);
    assert_eq!(v["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    assert_eq!(
        v["advisories"],
        serde_json::json!(["INTEL-SA-00289", "INTEL-SA-00615"])
    );
    assert_eq!(
        v["measurements"]["mrenclave"],
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert!(v["measurements"]["mrsigner"].is_string());
    assert_eq!(v["report_data"].as_str().unwrap().len(), 128);

    let v = refused_json(
        &p,
        &[
            "attest",
            "verify",
            "--tee",
            "sgx",
            "--evidence",
            &quote,
            "--collateral",
            &collateral,
            "--at",
            "2025-07-20T00:00:00Z",
        ],
    );
    assert_eq!(v["verified"], false);
    assert_eq!(v["measurements"], Value::Null);
    let v = refused_json(
        &p,
        &[
            "attest",
            "verify",
            "--tee",
            "sgx",
            "--evidence",
            &quote,
            "--at",
            JULY_2025,
        ],
    );
    assert_eq!(checks(&v), ["missing"]);
    // Intel PCS files: MobileCoin's recorded collateral loads (its PCK CRL is stale, so the quote
    // is refused, not the collateral file); a directory with two TCB info files is ambiguous.
    let pcs_quote = testdata("sgx_dcap/mobilecoin/hw_quote.dat");
    let tcb_info = testdata("sgx_dcap/mobilecoin/fmspc_00906ED50000_2023_07_12.json");
    let v = refused_json(
        &p,
        &[
            "attest",
            "verify",
            "--tee",
            "sgx",
            "--evidence",
            &pcs_quote,
            "--collateral",
            &tcb_info,
            "--at",
            "2023-07-20T00:00:00Z",
        ],
    );
    assert_eq!(checks(&v), ["collateral_expired"]);
    let err = p.fails(
        2,
        &[
            "attest",
            "verify",
            "--tee",
            "sgx",
            "--evidence",
            &pcs_quote,
            "--collateral",
            &testdata("sgx_dcap/mobilecoin"),
            "--at",
            "2023-07-20T00:00:00Z",
        ],
    );
    assert!(err.contains("several TCB info files"), "{err}");
    let dir = p.path("pcs");
    fs::create_dir(&dir).unwrap();
    for f in [
        "qe_identity.json",
        "tcb_signer.pem",
        "processor_ca.pem",
        "root_ca.pem",
        "processor_crl.der",
        "root_crl.der",
        "fmspc_00906ED50000_2023_07_12.json",
    ] {
        fs::copy(testdata(&format!("sgx_dcap/mobilecoin/{f}")), dir.join(f)).unwrap();
    }
    let v = refused_json(
        &p,
        &[
            "attest",
            "verify",
            "--tee",
            "sgx",
            "--evidence",
            &pcs_quote,
            "--collateral",
            "pcs",
            "--at",
            "2023-07-20T00:00:00Z",
        ],
    );
    assert_eq!(checks(&v), ["collateral_expired"]);
    fs::remove_file(dir.join("fmspc_00906ED50000_2023_07_12.json")).unwrap();
    p.fails(
        2,
        &[
            "attest",
            "verify",
            "--tee",
            "sgx",
            "--evidence",
            &pcs_quote,
            "--collateral",
            "pcs",
        ],
    );

    // An SGX quote is not TDX evidence.
    let v = refused_json(
        &p,
        &[
            "attest",
            "verify",
            "--tee",
            "tdx",
            "--evidence",
            &quote,
            "--collateral",
            &collateral,
            "--at",
            JULY_2025,
        ],
    );
    assert_eq!(v["verified"], false);
}

#[test]
fn attest_recorded_tdx() {
    let p = Party::init("alice");
    let v = json(&p.ok(&[
        "attest",
        "verify",
        "--tee",
        "tdx",
        "--evidence",
        &testdata("tdx/dcap-qvl/tdx_quote"),
        "--collateral",
        &testdata("tdx/dcap-qvl/tdx_quote_collateral.json"),
        "--at",
        JULY_2025,
    ]));
    assert_eq!(v["verified"], true);
    assert_eq!(v["measurements"]["mrtd"].as_str().unwrap().len(), 96);
    assert!(v["measurements"]["rtmr3"].is_string());
}

#[test]
fn attest_recorded_snp() {
    let p = Party::init("alice");
    let report = testdata("sev_snp/trustee/test-report.bin");
    let vcek = testdata("sev_snp/trustee/test-vcek.der");
    let at = "2025-06-01T00:00:00Z";
    let v = json(&p.ok(&[
        "attest",
        "verify",
        "--tee",
        "snp",
        "--evidence",
        &report,
        "--certs",
        &vcek,
        "--at",
        at,
    ]));
    assert_eq!(v["verified"], true);
    assert_eq!(v["measurements"]["measurement"].as_str().unwrap().len(), 96);

    // A directory of certificates: the VCEK and AMD's Milan chain.
    fs::create_dir(p.path("certs")).unwrap();
    fs::copy(&vcek, p.path("certs/vcek.der")).unwrap();
    fs::copy(
        testdata("sev_snp/amd_ca/milan_ask_ark_asvk.pem"),
        p.path("certs/milan.pem"),
    )
    .unwrap();
    let v2 = json(&p.ok(&[
        "attest",
        "verify",
        "--tee",
        "snp",
        "--evidence",
        &report,
        "--certs",
        "certs",
        "--at",
        at,
    ]));
    assert_eq!(v2["measurements"], v["measurements"]);

    // Without certificates: a refusal naming what is missing.
    let v = refused_json(
        &p,
        &[
            "attest",
            "verify",
            "--tee",
            "snp",
            "--evidence",
            &report,
            "--at",
            at,
        ],
    );
    assert_eq!(checks(&v), ["missing"]);

    // Hex text.
    let v = json(&p.ok(&[
        "attest",
        "verify",
        "--tee",
        "snp",
        "--evidence",
        &testdata("sev_snp/virtee-sev/report_milan.hex"),
        "--certs",
        &testdata("sev_snp/virtee-sev/vcek_milan.der"),
        "--at",
        at,
    ]));
    assert_eq!(v["verified"], true);
}

#[test]
fn attest_recorded_nitro() {
    let p = Party::init("alice");
    let doc = testdata("nitro/evervault/test-data/valid-attestation-doc-base64");
    let v = json(&p.ok(&[
        "attest",
        "verify",
        "--tee",
        "nitro",
        "--evidence",
        &doc,
        "--at",
        "2023-09-18T15:16:05Z",
    ]));
    assert_eq!(v["verified"], true);
    assert_eq!(v["debug"], true);
    assert!(v["measurements"]["pcr0"].is_string());
    assert_eq!(v["tcb_status"], Value::Null);
    assert!(v.get("simulated").is_none());
    // Years later the certificates have expired.
    let v = refused_json(
        &p,
        &[
            "attest",
            "verify",
            "--tee",
            "nitro",
            "--evidence",
            &doc,
            "--at",
            JULY_2025,
        ],
    );
    assert_eq!(v["verified"], false);
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn attest_cert_round_trip() {
    let p = Party::init("alice");
    p.ok(&args("attest cert --tee sim -o cert.pem --key-out key.pem"));
    assert!(
        fs::read_to_string(p.path("cert.pem"))
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(
        fs::read_to_string(p.path("key.pem"))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    #[cfg(unix)]
    assert_eq!(mode(&p.path("key.pem")), 0o600);

    match Command::new("openssl")
        .args(["x509", "-text", "-noout", "-in"])
        .arg(p.path("cert.pem"))
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("2.23.133.5.4.9"), "{text}");
        }
        Err(e) => println!("note: openssl not run ({e}); skipping the openssl check"),
    }

    let v = json(&p.ok(&args("attest verify-cert cert.pem")));
    assert_keys(&v, &["simulated", "key_bound"]);
    assert_eq!(v["verified"], true);
    assert_eq!(v["key_bound"], true);
    assert_eq!(v["tee"], "sim");
    assert_eq!(v["measurements"]["measurement"], bin_measurement().as_str());

    let m = bin_measurement();
    sim_policy(&p, "ok.yaml", true, &m);
    let v = json(&p.ok(&args("attest verify-cert cert.pem --policy ok.yaml")));
    assert_eq!(v["accepted"], true);
    sim_policy(&p, "nosim.yaml", false, &m);
    let v = refused_json(&p, &args("attest verify-cert cert.pem --policy nosim.yaml"));
    assert_eq!(v["accepted"], false);
    assert_eq!(checks(&v), ["simulation"]);

    // A nonce the certificate was not made for.
    let v = refused_json(&p, &args("attest verify-cert cert.pem --nonce abcd"));
    assert_eq!(v["key_bound"], true);
    assert_eq!(checks(&v), ["nonce"]);

    // One that it was.
    p.ok(&args(
        "attest cert --tee sim -o n.pem --key-out n.key --nonce abcd --days 3 --key-alg p384",
    ));
    p.ok(&args(
        "attest verify-cert n.pem --nonce abcd --policy ok.yaml",
    ));
    let v = refused_json(&p, &args("attest verify-cert n.pem --nonce abce"));
    assert_eq!(checks(&v), ["nonce"]);

    // Another party's sim root does not verify it.
    let bob = Party::init("bob");
    let cert = p.path("cert.pem");
    let v = refused_json(&bob, &["attest", "verify-cert", cert.to_str().unwrap()]);
    assert_eq!(v["verified"], false);
    assert_eq!(v["key_bound"], false);

    // DER is accepted too.
    let pem = fs::read_to_string(p.path("cert.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    fs::write(p.path("cert.der"), &der).unwrap();
    p.ok(&args("attest verify-cert cert.der"));

    // Flipped bytes inside the extension (the sim evidence's COSE document): refused, no panic.
    let ext = find(&der, &[0x67, 0x81, 0x05, 0x05, 0x04, 0x09]).expect("evidence extension OID");
    for off in [8, 20, 60, 120, 200] {
        let at = ext + off;
        if at >= der.len() {
            continue;
        }
        let mut bad = der.clone();
        bad[at] ^= 0x01;
        fs::write(p.path("bad.der"), &bad).unwrap();
        let v = refused_json(&p, &args("attest verify-cert bad.der"));
        assert!(
            v["verified"] == false || v["key_bound"] == false,
            "offset {off}: {v:#}"
        );
    }
    p.fails(2, &args("attest verify-cert absent.pem"));
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
