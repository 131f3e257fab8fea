//! The repository's Rust guests (`cargo xtask build-guests`), instrumented, against the
//! sandbox: every task on several inputs, the hostile ones included.

use std::path::{Path, PathBuf};

use dipla_protocol::FailureKind;
use dipla_sandbox::Limits;

use crate::common::{Pair, limits};

/// A guest module built by `cargo xtask build-guests`.
pub fn wasm(name: &str) -> Vec<u8> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../target/wasm32-unknown-unknown/release/{name}.wasm"
    ));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): run `cargo xtask build-guests`",
            path.display()
        )
    })
}

/// Runs each `(export, input)` both ways and checks they agree.
fn all_agree(name: &str, cases: &[(&str, &str)], limits: &Limits) {
    let module = wasm(name);
    let pair = Pair::new(&module);
    for (export, input) in cases {
        pair.agree(export, input, limits);
    }
}

#[test]
fn factorise_agrees() {
    all_agree(
        "factorise",
        &[
            ("factorise", "0"),
            ("factorise", "12"),
            ("factorise", "600851475143"),
            ("factorise", "1000000007"),
            ("factorise", "18446744073709551615"),
            ("count", "[2,2,3]"),
            ("sum", "[4,5]"),
            ("factorise", "\"not a number\""),
        ],
        &limits(10_000_000_000),
    );
}

#[test]
fn pi_agrees() {
    all_agree(
        "pi",
        &[
            ("hits", "1"),
            ("hits", "42"),
            ("add", "[1,2]"),
            ("estimate", "[3141592,1]"),
            ("estimate", "[0,0]"),
        ],
        &limits(10_000_000_000),
    );
}

#[test]
fn mandelbrot_agrees() {
    let view = r#"{"width":80,"height":60,"center_re":-0.6,"center_im":0.0,"pixel":0.0375,"max_iterations":500}"#;
    let zoomed = r#"{"width":64,"height":64,"center_re":-0.7436447860,"center_im":0.1318252536,"pixel":1e-9,"max_iterations":2000}"#;
    all_agree(
        "mandelbrot",
        &[
            ("rows", &format!("[{view},0,10]")),
            ("rows", &format!("[{view},7,10]")),
            ("rows", &format!("[{zoomed},3,8]")),
            ("rows", &format!("[{view},10,10]")),
        ],
        &limits(10_000_000_000),
    );
}

#[test]
fn the_other_examples_agree() {
    let unlimited = limits(10_000_000_000);
    all_agree(
        "hashsearch",
        &[
            (
                "slice",
                r#"[{"data":"dipla","start":0,"end":4294967296},0,65536]"#,
            ),
            (
                "slice",
                r#"[{"data":"dipla","start":0,"end":4294967296},17,65536]"#,
            ),
        ],
        &unlimited,
    );
    let matrix = "[[4,-2,1],[1,3,-1],[0,2,5]]";
    all_agree(
        "invert_matrix",
        &[
            ("inverse_row", &format!("[{matrix},0,3]")),
            ("inverse_row", &format!("[{matrix},2,3]")),
            ("inverse_row", &format!("[{matrix},5,3]")),
        ],
        &unlimited,
    );
    all_agree(
        "maze_explore",
        &[("visit", "[0,0]"), ("visit", "[3,4]")],
        &unlimited,
    );
    all_agree(
        "wordcount",
        &[
            (
                "count",
                r#""the quick brown fox jumps over the lazy dog the end""#,
            ),
            ("merge", r#"[{"a":1,"b":2},{"b":3,"c":4}]"#),
            ("top", r#"[{"a":1,"b":2,"c":2},2]"#),
        ],
        &unlimited,
    );
}

#[test]
fn the_testbed_agrees() {
    all_agree(
        "testbed",
        &[
            ("square", "12"),
            ("add_one", "41"),
            ("describe", r#"["a",2,["x","y"]]"#),
            ("add", "[2,3]"),
            ("count", "[1,2,3]"),
            ("part", r#"["x",1,3]"#),
            ("seek", "1777"),
            ("seek", "12"),
            ("reach", "5"),
            ("burn", "[7,100000]"),
            ("even_only", "4"),
            ("even_only", "3"),
            ("maybe", "3"),
            ("or_zero", "null"),
            ("nothing", "1"),
            ("unbounded", "0"),
            ("unbounded", "1"),
            ("unbounded", "5"),
            ("holes", "2"),
            ("hog", "3"),
            ("recurse", "1000"),
            ("explode", "3"),
            ("wild_read", "4294967200"),
            ("flood", "1000"),
            ("wobble", "17"),
            ("chatty", "4"),
            ("chatty", "3"),
            ("chatty_panic", "5"),
            ("log_flood", "2000"),
            ("clock", r#""instant""#),
            ("clock", r#""system""#),
            ("square", "\"twelve\""),
        ],
        &limits(10_000_000_000),
    );
}

#[test]
fn hostile_testbed_tasks_are_contained_alike() {
    let module = wasm("testbed");
    let pair = Pair::new(&module);
    let ran = pair.agree("spin", "0", &limits(50_000_000));
    assert_eq!(ran.kind(), Some(FailureKind::OutOfFuel));
    let small = Limits {
        memory_bytes: 8 << 20,
        ..limits(10_000_000_000)
    };
    let ran = pair.agree("hog", "100", &small);
    assert_eq!(ran.kind(), Some(FailureKind::MemoryLimit));
    let ran = pair.agree("explode", "3", &small);
    assert_eq!(ran.kind(), Some(FailureKind::Panic));
    let ran = pair.agree("wild_read", "4294967200", &small);
    assert_eq!(ran.kind(), Some(FailureKind::Trap));
    let ran = pair.agree(
        "flood",
        "100",
        &Limits {
            max_output_bytes: 10,
            ..small
        },
    );
    assert_eq!(ran.kind(), Some(FailureKind::BadOutput));
    // Out of fuel anywhere in a task: the same outcome at every limit near its end.
    let needed = pair.sandbox("burn", "[7,1000]", &small).fuel;
    for fuel in needed - 300..=needed {
        pair.agree("burn", "[7,1000]", &limits(fuel));
    }
    // A deep recursion overflows both stacks (where, each engine decides).
    let deep = limits(u64::MAX / 2);
    assert_eq!(
        pair.sandbox("recurse", "100000000", &deep).kind(),
        Some(FailureKind::StackOverflow)
    );
    assert_eq!(
        pair.browser("recurse", "100000000", &deep).kind(),
        Some(FailureKind::StackOverflow)
    );
}
