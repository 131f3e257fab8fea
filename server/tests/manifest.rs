//! A bad manifest or module is reported with the key, file or line at fault, before any worker
//! is accepted.

use std::path::Path;

use dipla_sandbox::Sandbox;
use dipla_server::{Source, manifest};

const GUEST: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 64))
    (func (export "double") (param i32 i32) (result i64) (i64.const 0))
    (@custom "dipla" "{\"abi\":1,\"task\":\"double\"}\n"))"#;

/// Writes `guest` as `guest.wasm` and `manifest` as `job.toml` in a fresh folder, loads it and
/// returns the error message.
fn error(guest: &str, manifest_text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("guest.wasm"),
        wat::parse_str(guest).unwrap(),
    )
    .unwrap();
    let path = dir.path().join("job.toml");
    std::fs::write(&path, manifest_text).unwrap();
    match manifest::load(&path, &Sandbox::new().unwrap()) {
        Ok(job) => panic!("{job:?} should have been refused"),
        Err(error) => error.to_string(),
    }
}

fn job(stage_extra: &str) -> String {
    format!(
        r#"name = "t"
        [modules]
        m = "guest.wasm"
        [[stages]]
        name = "s"
        task = "m.double"
        {stage_extra}"#
    )
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} should mention {part:?}"
        );
    }
}

#[test]
fn a_good_manifest_loads_with_resolved_paths_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("guest.wasm"),
        wat::parse_str(GUEST).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "1\n\n[2, 3]\n{\"a\": 4}\n").unwrap();
    let path = dir.path().join("job.toml");
    std::fs::write(&path, job(r#"inputs = { file = "in.jsonl" }"#)).unwrap();
    let job = manifest::load(&path, &Sandbox::new().unwrap()).unwrap();
    assert_eq!(job.stages[0].tasks, 3);
    let Source::List(inputs) = &job.stages[0].source else {
        panic!("a list")
    };
    assert_eq!(inputs.get(2).get(), r#"{"a": 4}"#);
    assert_eq!(job.stages[0].limits, manifest::DEFAULT_LIMITS);
    assert_eq!(job.stages[0].max_attempts, manifest::DEFAULT_MAX_ATTEMPTS);
    assert_eq!(job.stages[0].export, "double");
}

#[test]
fn a_missing_module_names_the_key_and_the_path() {
    let message = error(
        GUEST,
        &job("inputs = { values = [1] }").replace("guest.wasm", "gone.wasm"),
    );
    assert_mentions(&message, &["modules.m", "gone.wasm", "cannot read"]);
}

#[test]
fn a_module_with_imports_is_refused_before_any_worker_joins() {
    let importer = GUEST.replace("(memory", r#"(import "wasi" "fd_write" (func)) (memory"#);
    let message = error(&importer, &job("inputs = { values = [1] }"));
    assert_mentions(
        &message,
        &["modules.m", "wasi.fd_write", "may import nothing"],
    );
}

#[test]
fn a_module_without_the_abi_section_is_refused() {
    let bare = GUEST.replace(
        r#"(@custom "dipla" "{\"abi\":1,\"task\":\"double\"}\n")"#,
        "",
    );
    let message = error(&bare, &job("inputs = { values = [1] }"));
    assert_mentions(&message, &["modules.m", "no `dipla` custom section"]);
}

#[test]
fn an_unknown_task_lists_the_tasks_there_are() {
    let message = error(
        GUEST,
        &job("inputs = { values = [1] }").replace("m.double", "m.triple"),
    );
    assert_mentions(
        &message,
        &["stages[0].task", "`triple` is not a task", "double"],
    );
    let message = error(
        GUEST,
        &job("inputs = { values = [1] }").replace("m.double", "n.double"),
    );
    assert_mentions(&message, &["stages[0].task", "no module named \"n\""]);
    let message = error(
        GUEST,
        &job("inputs = { values = [1] }").replace("m.double", "double"),
    );
    assert_mentions(&message, &["stages[0].task", "module.export"]);
}

#[test]
fn misspelt_keys_are_named() {
    let message = error(GUEST, &job("inptus = { values = [1] }"));
    assert_mentions(&message, &["inptus"]);
    let message = error(GUEST, &job("inputs = { values = [1] }\n[limits]\nfeul = 5"));
    assert_mentions(&message, &["feul"]);
}

#[test]
fn empty_and_malformed_inputs_are_named() {
    let message = error(GUEST, &job("inputs = { range = { start = 5, end = 5 } }"));
    assert_mentions(&message, &["stages[0].inputs", "empty"]);
    let message = error(GUEST, &job("inputs = { values = [] }"));
    assert_mentions(&message, &["stages[0].inputs", "no inputs"]);
    let message = error(GUEST, &job(r#"inputs = { file = "missing.jsonl" }"#));
    assert_mentions(&message, &["stages[0].inputs", "missing.jsonl"]);
}

#[test]
fn a_bad_input_line_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("guest.wasm"),
        wat::parse_str(GUEST).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "1\n2\n{oops\n").unwrap();
    let path = dir.path().join("job.toml");
    std::fs::write(&path, job(r#"inputs = { file = "in.jsonl" }"#)).unwrap();
    let message = manifest::load(&path, &Sandbox::new().unwrap())
        .unwrap_err()
        .to_string();
    assert_mentions(&message, &["stages[0].inputs", "in.jsonl:3", "not JSON"]);
}

#[test]
fn limits_out_of_range_are_named() {
    for (limits, key) in [
        ("fuel = 0", "limits.fuel"),
        ("memory_mb = 0", "limits.memory_mb"),
        ("memory_mb = 5000", "limits.memory_mb"),
        ("timeout_secs = 0", "limits.timeout_secs"),
    ] {
        let message = error(
            GUEST,
            &job(&format!("inputs = {{ values = [1] }}\n[limits]\n{limits}")),
        );
        assert_mentions(&message, &[key]);
    }
    let message = error(GUEST, &job("inputs = { values = [1] }\nmax_attempts = 0"));
    assert_mentions(&message, &["stages[0].max_attempts"]);
}

#[test]
fn duplicate_stage_names_are_refused() {
    let text = job("inputs = { values = [1] }");
    let twice = format!(
        "{text}\n[[stages]]\nname = \"s\"\ntask = \"m.double\"\ninputs = {{ values = [2] }}"
    );
    let message = error(GUEST, &twice);
    assert_mentions(&message, &["stages[1].name", "another stage"]);
}

#[test]
fn a_missing_manifest_is_named() {
    let message = manifest::load(Path::new("/nonexistent/job.toml"), &Sandbox::new().unwrap())
        .unwrap_err()
        .to_string();
    assert_mentions(&message, &["/nonexistent/job.toml"]);
}

const TWO: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 64))
    (func (export "add") (param i32 i32) (result i64) (i64.const 0))
    (func (export "id") (param i32 i32) (result i64) (i64.const 0))
    (func (export "three") (param i32 i32) (result i64) (i64.const 0))
    (@custom "dipla" "{\"abi\":1,\"task\":\"add\",\"params\":[{\"name\":\"a\",\"type\":\"u64\"},{\"name\":\"b\",\"type\":\"u64\"}],\"returns\":\"u64\",\"fold\":true}\n")
    (@custom "dipla" "{\"abi\":1,\"task\":\"id\",\"params\":[{\"name\":\"x\",\"type\":\"u64\"}],\"returns\":\"String\"}\n")
    (@custom "dipla" "{\"abi\":1,\"task\":\"three\",\"params\":[{\"name\":\"v\",\"type\":\"u64\"},{\"name\":\"i\",\"type\":\"u32\"},{\"name\":\"n\",\"type\":\"u32\"}],\"returns\":\"u64\"}\n"))"#;

fn graph(stages: &str) -> String {
    format!("name = \"g\"\n[modules]\nm = \"guest.wasm\"\n{stages}")
}

fn load_graph(stages: &str) -> Result<dipla_server::Job, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("guest.wasm"), wat::parse_str(TWO).unwrap()).unwrap();
    let path = dir.path().join("job.toml");
    std::fs::write(&path, graph(stages)).unwrap();
    manifest::load(&path, &Sandbox::new().unwrap()).map_err(|e| e.to_string())
}

#[test]
fn stages_read_other_stages_in_any_order() {
    let job = load_graph(
        r#"
        [[stages]]
        name = "sums"
        task = "m.add"
        inputs = { zip = [ { stage = "ids" }, { range = { start = 0, end = 4 } } ] }
        [[stages]]
        name = "ids"
        task = "m.id"
        inputs = { values = [1, 2, 3, 4] }
        [[stages]]
        name = "total"
        task = "m.add"
        reduce = { stage = "sums", fan_in = 3 }
        [[stages]]
        name = "parts"
        task = "m.three"
        inputs = { scatter = { value = 10, count = 5 } }
        [[stages]]
        name = "again"
        task = "m.id"
        inputs = { stage = "parts" }
        [[stages]]
        name = "after-total"
        task = "m.add"
        inputs = { zip = [ { stage = "total" }, { values = [5] } ] }
        "#,
    )
    .unwrap();
    let tasks: Vec<u64> = job.stages.iter().map(|s| s.tasks).collect();
    // Regression: a stage reading a reduce stage has one input, not one per folded item.
    assert_eq!(tasks, [4, 4, 4, 5, 5, 1]);
    assert!(matches!(
        job.stages[2].source,
        Source::Reduce {
            stage: 0,
            fan_in: 3
        }
    ));
    assert_eq!(job.task_count(), 4 + 4 + 1 + 5 + 5 + 1);
}

#[test]
fn cycles_and_unknown_stages_are_refused() {
    let cycle = load_graph(
        r#"
        [[stages]]
        name = "a"
        task = "m.id"
        inputs = { stage = "b" }
        [[stages]]
        name = "b"
        task = "m.id"
        inputs = { stage = "a" }
        "#,
    )
    .unwrap_err();
    assert_mentions(&cycle, &["cycle", "a -> b -> a"]);
    let unknown = load_graph(
        r#"
        [[stages]]
        name = "a"
        task = "m.id"
        inputs = { stage = "nowhere" }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &unknown,
        &["stages[0].inputs", "no stage named \"nowhere\""],
    );
}

#[test]
fn arity_mismatches_are_refused_at_load_time() {
    let zip = load_graph(
        r#"
        [[stages]]
        name = "a"
        task = "m.id"
        inputs = { zip = [ { values = [1] }, { values = [2] } ] }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &zip,
        &[
            "stages[0].inputs",
            "the zip gives 2 argument(s) but id(x: u64) -> String takes 1",
        ],
    );
    let scatter = load_graph(
        r#"
        [[stages]]
        name = "a"
        task = "m.add"
        inputs = { scatter = { value = 1, count = 2 } }
        "#,
    )
    .unwrap_err();
    assert_mentions(&scatter, &["scatter gives 3 argument(s)"]);
    let reduce = load_graph(
        r#"
        [[stages]]
        name = "a"
        task = "m.id"
        inputs = { values = [1, 2] }
        [[stages]]
        name = "b"
        task = "m.id"
        reduce = { stage = "a" }
        "#,
    )
    .unwrap_err();
    assert_mentions(&reduce, &["stages[1].task", "cannot reduce"]);
    let lengths = load_graph(
        r#"
        [[stages]]
        name = "a"
        task = "m.add"
        inputs = { zip = [ { values = [1, 2] }, { values = [2] } ] }
        "#,
    )
    .unwrap_err();
    assert_mentions(&lengths, &["differ in length (2, 1)"]);
}
