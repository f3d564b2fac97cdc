//! Feeds arbitrary SASL tokens to the broker's PLAIN and SCRAM parsers: a
//! first message, then (after the first 0xFF byte) a final one, against a
//! store that knows one user. Whatever arrives, the exchange must answer
//! or refuse, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_broker::sasl::parse_plain;
use weir_broker::sasl::scram::ScramServer;
use weir_client::sasl::scram::{ScramHash, StoredCredential};

fuzz_target!(|data: &[u8]| {
    let _ = parse_plain(data);
    let (first, last) = match data.iter().position(|b| *b == 0xFF) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let lookup = |user: &str| {
        (user == "alice").then(|| StoredCredential::from_password(ScramHash::Sha256, "pw", b"salt", 4096))
    };
    let mut server = ScramServer::new(ScramHash::Sha256);
    if server.step(first, &lookup, "srv", b"k").is_ok() {
        let _ = server.step(last, &lookup, "srv", b"k");
    }
});
