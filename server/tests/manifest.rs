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
    (func (export "find") (param i32 i32) (result i64) (i64.const 0))
    (func (export "factors") (param i32 i32) (result i64) (i64.const 0))
    (func (export "name") (param i32 i32) (result i64) (i64.const 0))
    (@custom "dipla" "{\"abi\":1,\"task\":\"add\",\"params\":[{\"name\":\"a\",\"type\":\"u64\"},{\"name\":\"b\",\"type\":\"u64\"}],\"returns\":\"u64\",\"fold\":true}\n")
    (@custom "dipla" "{\"abi\":1,\"task\":\"id\",\"params\":[{\"name\":\"x\",\"type\":\"u64\"}],\"returns\":\"u64\"}\n")
    (@custom "dipla" "{\"abi\":1,\"task\":\"find\",\"params\":[{\"name\":\"x\",\"type\":\"u64\"}],\"returns\":\"Find\"}\n")
    (@custom "dipla" "{\"abi\":1,\"task\":\"factors\",\"params\":[{\"name\":\"n\",\"type\":\"u64\"}],\"returns\":\"Vec<u64>\"}\n")
    (@custom "dipla" "{\"abi\":1,\"task\":\"name\",\"params\":[{\"name\":\"s\",\"type\":\"String\"}],\"returns\":\"String\"}\n")
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
            "the zip gives 2 argument(s) but id(x: u64) -> u64 takes 1",
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

#[test]
fn a_range_into_a_task_of_two_parameters_is_refused() {
    let message = load_graph(
        r#"
        [[stages]]
        name = "pairs"
        task = "m.add"
        inputs = { range = { start = 0, end = 10 } }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &message,
        &[
            "job.toml: stages[0] \"pairs\": a range gives each task one integer but add(a: u64, b: u64) -> u64 [can reduce] takes 2 arguments",
        ],
    );
}

#[test]
fn values_of_the_wrong_arity_or_type_are_refused_not_truncated() {
    let three = load_graph(
        r#"
        [[stages]]
        name = "a"
        task = "m.add"
        inputs = { values = [[1, 2], [100, 200, 300]] }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &three,
        &[
            "stages[0].inputs: values[1]: [100,200,300] gives 3 argument(s) but add(a: u64, b: u64) -> u64 [can reduce] takes 2",
        ],
    );
    let text = load_graph(
        r#"
        [[stages]]
        name = "a"
        task = "m.id"
        inputs = { values = [1, "two"] }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &text,
        &["values[1]: \"two\" is not an integer (u64), for id(x: u64) -> u64"],
    );
    let negative = load_graph(
        r#"
        [[stages]]
        name = "a"
        task = "m.three"
        inputs = { values = [[1, -1, 2]] }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &negative,
        &["values[0]: element 1: -1 is out of the range of u32"],
    );
}

#[test]
fn a_bad_line_of_an_input_file_names_the_file_and_line_and_the_type() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("guest.wasm"), wat::parse_str(TWO).unwrap()).unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "1\n\n2\n\"three\"\n").unwrap();
    let path = dir.path().join("job.toml");
    let stages = r#"
        [[stages]]
        name = "a"
        task = "m.id"
        inputs = { file = "in.jsonl" }
        "#;
    std::fs::write(&path, graph(stages)).unwrap();
    let message = manifest::load(&path, &Sandbox::new().unwrap())
        .unwrap_err()
        .to_string();
    assert_mentions(
        &message,
        &[
            "stages[0].inputs",
            "in.jsonl:4: \"three\" is not an integer (u64)",
        ],
    );
}

#[test]
fn a_struct_output_chained_into_a_u64_task_is_refused() {
    let stages = r#"
        [[stages]]
        name = "finds"
        task = "m.find"
        inputs = { values = [1, 2] }
        [[stages]]
        name = "ids"
        task = "m.id"
        inputs = { stage = "finds" }
        "#;
    let message = load_graph(stages).unwrap_err();
    assert_mentions(
        &message,
        &[
            "job.toml: stages[1] \"ids\": map over \"finds\": id(x: u64) -> u64 takes u64 but \"finds\" outputs Find",
        ],
    );
    // The check can be turned off for a struct that serialises as a number.
    let unchecked = stages.replace(
        "inputs = { stage = \"finds\" }",
        "inputs = { stage = \"finds\" }\ncheck_types = false",
    );
    load_graph(&unchecked).unwrap();
    let string = load_graph(
        r#"
        [[stages]]
        name = "names"
        task = "m.name"
        inputs = { values = ["a"] }
        [[stages]]
        name = "ids"
        task = "m.id"
        inputs = { zip = [ { stage = "names" } ] }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &string,
        &[
            "stages[1] \"ids\": zip[0] over \"names\": parameter 0 of id(x: u64) -> u64 is u64 but \"names\" outputs String",
        ],
    );
}

#[test]
fn a_reducer_of_the_wrong_type_is_refused() {
    let message = load_graph(
        r#"
        [[stages]]
        name = "factors"
        task = "m.factors"
        inputs = { values = [12, 15] }
        [[stages]]
        name = "sum"
        task = "m.add"
        reduce = { stage = "factors" }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &message,
        &[
            "job.toml: stages[1] \"sum\": reduce over \"factors\": the reducer takes u64 but \"factors\" outputs Vec<u64>",
        ],
    );
    let struct_reduced = load_graph(
        r#"
        [[stages]]
        name = "finds"
        task = "m.find"
        inputs = { values = [12, 15] }
        [[stages]]
        name = "sum"
        task = "m.add"
        reduce = { stage = "finds" }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &struct_reduced,
        &["the reducer takes u64 but \"finds\" outputs Find"],
    );
}

#[test]
fn integers_above_i64_max_are_written_as_strings() {
    let job = load_graph(
        r#"
        [[stages]]
        name = "big"
        task = "m.id"
        inputs = { values = ["18446744073709551615", 5] }
        [[stages]]
        name = "names"
        task = "m.name"
        inputs = { values = ["18446744073709551615"] }
        [[stages]]
        name = "range"
        task = "m.id"
        inputs = { range = { start = "18446744073709551610", end = "18446744073709551615" } }
        [[stages]]
        name = "pairs"
        task = "m.three"
        inputs = { values = [["9223372036854775808", 1, 2]] }
        "#,
    )
    .unwrap();
    let list = |stage: usize| match &job.stages[stage].source {
        Source::List(inputs) => inputs,
        _ => panic!("a list"),
    };
    assert_eq!(list(0).get(0).get(), "18446744073709551615");
    assert_eq!(list(0).get(1).get(), "5");
    assert_eq!(
        list(1).get(0).get(),
        "\"18446744073709551615\"",
        "a String parameter keeps its string"
    );
    assert_eq!(job.stages[2].tasks, 5);
    assert_eq!(list(2).get(4).get(), "18446744073709551614");
    assert_eq!(list(3).get(0).get(), "[9223372036854775808,1,2]");
    let over = load_graph(
        r#"
        [[stages]]
        name = "big"
        task = "m.id"
        inputs = { values = ["18446744073709551616"] }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &over,
        &["values[0]: \"18446744073709551616\" is not an integer (u64)"],
    );
    let bad = load_graph(
        r#"
        [[stages]]
        name = "r"
        task = "m.id"
        inputs = { range = { start = -1, end = 5 } }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &bad,
        &["range.start: -1 should be an integer from 0 to 18446744073709551615"],
    );
}

#[test]
fn a_memory_limit_below_what_the_module_starts_with_is_refused() {
    let big = GUEST.replace(
        "(memory (export \"memory\") 1)",
        "(memory (export \"memory\") 17)",
    );
    let message = error(
        &big,
        &job("inputs = { values = [1] }\n[limits]\nmemory_mb = 1"),
    );
    assert_mentions(
        &message,
        &[
            "limits.memory_mb",
            "module m (guest.wasm)",
            "memory_mb = 1 is not enough: the module itself starts with 1.06 MiB of memory (17 pages of 64 KiB)",
            "give at least 2 MiB",
        ],
    );
}

#[test]
fn a_file_that_is_not_wasm_is_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("guest.wasm"), b"\x7fELF\x02\x01\x01\0rest").unwrap();
    let path = dir.path().join("job.toml");
    std::fs::write(&path, job("inputs = { values = [1] }")).unwrap();
    let message = manifest::load(&path, &Sandbox::new().unwrap())
        .unwrap_err()
        .to_string();
    assert_mentions(
        &message,
        &["modules.m: guest.wasm: not a wasm module: it is an ELF executable"],
    );
    assert!(
        !message.contains('\n') && !message.contains("[0,"),
        "{message}"
    );
}

#[test]
fn explore_stages_and_their_next_inputs_are_checked() {
    let message = load_graph(
        r#"
        [[stages]]
        name = "walk"
        task = "m.id"
        inputs = { values = [1] }
        explore = { max_tasks = 10 }
        "#,
    )
    .unwrap_err();
    assert_mentions(
        &message,
        &[
            "stages[0] \"walk\": an explore stage's task returns dipla_guest::Explore",
            "id(x: u64) -> u64 returns u64",
        ],
    );
}
