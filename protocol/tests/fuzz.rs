//! The decoders a peer feeds, under arbitrary input: they return an error or a message and
//! never panic; valid messages survive a round trip. The number of cases is
//! `PROPTEST_CASES` (CI runs the default below; `just fuzz` runs 100 times more).

use dipla_protocol::{ServerMessage, WorkerMessage};
use proptest::prelude::*;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 2_000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig::with_cases(cases)
}

/// JSON-ish text: fragments of real messages glued at random, so the decoder sees
/// near-misses, not only noise.
fn jsonish() -> impl Strategy<Value = String> {
    let fragments = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"",
        "\"hello\"",
        "\"results\"",
        "\"tasks\"",
        "\"fetch_module\"",
        "\"id\"",
        "\"fuel\"",
        "\"micros\"",
        "\"output\"",
        "\"error\"",
        "\"kind\"",
        "\"panic\"",
        "\"stop\"",
        "true",
        "null",
        "1",
        "-1",
        "1e999",
        "18446744073709551616",
        "\"\\u0000\"",
        "\"protocol\"",
        "\"cores\"",
        "\"benchmark\"",
        "\"token\"",
        "\"hashes\"",
        "\"abc\"",
    ]);
    prop::collection::vec(fragments, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn worker_messages_never_panic_the_decoder(text in jsonish()) {
        let _ = serde_json::from_str::<WorkerMessage>(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic_either_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = serde_json::from_str::<WorkerMessage>(&text);
        let _ = serde_json::from_str::<ServerMessage>(&text);
    }

    #[test]
    fn results_round_trip(id in any::<u64>(), fuel in any::<u64>(), micros in any::<u64>(), n in any::<i64>(), stop in any::<bool>()) {
        let text = format!(
            r#"{{"results":{{"results":[{{"id":{id},"fuel":{fuel},"micros":{micros},"output":{n}{}}}]}}}}"#,
            if stop { r#","stop":true"# } else { "" }
        );
        let message: WorkerMessage = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(serde_json::to_string(&message).unwrap(), text);
    }
}
