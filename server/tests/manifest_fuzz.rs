//! The manifest parser under arbitrary and mutated input: it returns a job or an error naming
//! what is wrong, and never panics. The number of cases is `PROPTEST_CASES` (CI runs the
//! default below; `just fuzz` runs 100 times more).

use std::sync::OnceLock;

use dipla_sandbox::Sandbox;
use proptest::prelude::*;

const CASES: u32 = 500;

/// One engine for every case.
fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new().unwrap())
}

#[test]
fn the_unmutated_manifest_loads() {
    let dir = folder();
    dipla_server::manifest::parse(VALID, &dir.path().join("job.toml"), sandbox()).unwrap();
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig::with_cases(cases)
}

/// A guest with two tasks of any arity (its section does not say), so stage checks run.
const GUEST: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 64))
    (func (export "square") (param i32 i32) (result i64) (i64.const 0))
    (func (export "add") (param i32 i32) (result i64) (i64.const 0))
    (@custom "dipla" "{\"abi\":1,\"task\":\"square\"}\n{\"abi\":1,\"task\":\"add\"}\n"))"#;

/// A folder holding the guest as `m.wasm`, for manifests to name.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.wasm"), wat::parse_str(GUEST).unwrap()).unwrap();
    dir
}

const VALID: &str = r#"
name = "job"
[modules]
m = "m.wasm"
[[stages]]
name = "a"
task = "m.square"
inputs = { range = { start = 0, end = 10 } }
replicate = 0.1
[[stages]]
name = "b"
task = "m.add"
inputs = { stage = "a" }
[[stages]]
name = "c"
task = "m.add"
reduce = { stage = "b", fan_in = 3 }
[limits]
fuel = 1000
"#;

/// Lines of manifest-like TOML, in random order and number.
fn manifest_lines() -> impl Strategy<Value = String> {
    let lines = prop::sample::select(vec![
        "name = \"x\"",
        "[modules]",
        "m = \"m.wasm\"",
        "[[stages]]",
        "name = \"s\"",
        "task = \"m.square\"",
        "task = \"m.t\"",
        "inputs = { range = { start = 5, end = 1 } }",
        "inputs = { stage = \"s\" }",
        "inputs = { values = [] }",
        "reduce = { stage = \"s\" }",
        "inputs = { scatter = { value = 1, count = 0 } }",
        "explore = { max_tasks = 0 }",
        "replicate = 2.5",
        "replicate = \"sometimes\"",
        "quorum = 1",
        "verify = \"m\"",
        "deadline_secs = -1",
        "stop_after = 0",
        "max_attempts = 0",
        "[limits]",
        "memory_mb = 0",
        "fuel = 0",
        "timeout_secs = 0",
        "bogus = 1",
        "= =",
        "[[",
    ]);
    prop::collection::vec(lines, 0..20).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_manifests_are_refused_with_a_message(text in manifest_lines()) {
        let (dir, sandbox) = (folder(), sandbox());
        if let Err(error) = dipla_server::manifest::parse(&text, &dir.path().join("job.toml"), sandbox) {
            prop_assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn mutated_manifests_never_panic(cut in 0..VALID.len(), byte in any::<u8>(), at in 0..VALID.len()) {
        let (dir, sandbox) = (folder(), sandbox());
        let mut bytes = VALID.as_bytes()[..cut.max(1)].to_vec();
        let at = at.min(bytes.len() - 1);
        bytes[at] = byte;
        let text = String::from_utf8_lossy(&bytes);
        let _ = dipla_server::manifest::parse(&text, &dir.path().join("job.toml"), sandbox);
    }
}
