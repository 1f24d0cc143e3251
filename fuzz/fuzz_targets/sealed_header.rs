//! `Header::parse` and `read_header` on arbitrary bytes: never panic, fail only with
//! `Malformed`, agree with each other, and whatever parses re-encodes to the same bytes.
#![no_main]

use coffer_crypto::Error;
use coffer_crypto::sealed::{Header, read_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let streamed = read_header(data);
    match Header::parse(data) {
        Ok((header, consumed)) => {
            let encoded = header.encode();
            assert_eq!(encoded, data[..consumed], "re-encoding differs");
            assert_eq!(header.encoded_len(), consumed);
            assert_eq!(Header::parse(&encoded).unwrap(), (header.clone(), consumed));
            assert_eq!(streamed.unwrap(), header, "read_header disagrees");
        }
        Err(e) => {
            assert!(
                matches!(e, Error::Malformed { .. }),
                "untyped failure: {e:?}"
            );
            assert!(streamed.is_err(), "read_header accepted what parse refused");
        }
    }
});
