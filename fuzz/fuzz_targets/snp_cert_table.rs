//! Arbitrary bytes as the SEV certificate table a host returns in configfs-tsm's `auxblob`:
//! parsing never panics, and every certificate it yields lies inside the input.
#![no_main]

use coffer_tee::tsm::parse_snp_cert_table;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = parse_snp_cert_table(data) {
        for (_, cert) in certs {
            assert!(!cert.is_empty() && cert.len() <= data.len());
        }
    }
});
