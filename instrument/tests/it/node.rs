//! (b) in a real browser engine: V8, through Node.js (`host.mjs` is the host protocol in
//! JavaScript). Skipped when `node` is not installed.

use std::io::Write;
use std::process::{Command, Stdio};

use dipla_sandbox::Limits;
use serde_json::{Value, json};

use crate::common::{in_sandbox, limits, sandbox};
use crate::guests::wasm;
use crate::wat::{BULK, CONTROL, DEAD, FAILING, FLOATS, TAIL, guest};

fn node() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs `cases` of the instrumented `module` in Node.js and checks each against the sandbox:
/// the same output bits or failure (kind and message: a trap's as `host.mjs` translates V8's
/// wording, a stack overflow's kind only), and the same fuel.
fn agree_in_node(module: &[u8], cases: &[(&str, String, Limits)]) {
    let instrumented = dipla_instrument::instrument(module).unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&instrumented).unwrap();
    let request: Vec<Value> = cases
        .iter()
        .map(|(export, input, limits)| {
            json!({
                "export": export,
                "input": input,
                "fuel": limits.fuel.to_string(),
                "memoryBytes": limits.memory_bytes,
                "maxOutputBytes": limits.max_output_bytes,
            })
        })
        .collect();
    let mut child = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/host.mjs"))
        .arg(file.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&request).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "node failed");
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let guest = sandbox().compile(module).unwrap();
    for ((export, input, limits), node) in cases.iter().zip(results) {
        let native = in_sandbox(&guest, export, input, limits);
        let what = format!("{export}({input}): sandbox {native:?}, node {node}");
        assert_eq!(
            node["fuel"].as_str(),
            Some(native.fuel.to_string().as_str()),
            "{what}"
        );
        match &native.outcome {
            Ok((output, stop)) => assert_eq!(node["ok"], json!([output, stop]), "{what}"),
            Err((kind, message)) => {
                let kind = serde_json::to_value(kind).unwrap();
                assert_eq!(node["err"][0], kind, "{what}");
                if kind != "stack_overflow" {
                    assert_eq!(node["err"][1].as_str(), Some(message.as_str()), "{what}");
                }
            }
        }
    }
}

#[test]
fn v8_computes_what_the_sandbox_computes() {
    if !node() {
        eprintln!("node is not installed: skipped");
        return;
    }
    let l = limits(10_000_000_000);
    let cases = |list: &[(&'static str, &str)]| -> Vec<(&'static str, String, Limits)> {
        list.iter()
            .map(|(export, input)| (*export, (*input).to_owned(), l))
            .collect()
    };
    agree_in_node(
        &guest("1", CONTROL),
        &cases(&[
            ("loops", "7"),
            ("calls", "9"),
            ("multi", "3"),
            ("fib", "20"),
        ]),
    );
    agree_in_node(
        &guest("1", BULK),
        &cases(&[("bulk", "300"), ("bulk", "70000")]),
    );
    agree_in_node(
        &guest("1", FLOATS),
        &cases(&[("nan", "0"), ("nan", "4"), ("zero_div", "3")]),
    );
    agree_in_node(&guest("1", DEAD), &cases(&[("dead", "0"), ("dead", "12")]));
    let tight = Limits {
        memory_bytes: 10 << 16,
        ..limits(1_000_000)
    };
    agree_in_node(
        &guest("1 20", FAILING),
        &[
            ("divide", "10".into(), l),
            ("traps", "0".into(), l),
            ("traps", "1".into(), l),
            ("traps", "2".into(), l),
            ("traps", "3".into(), l),
            ("traps", "4".into(), l),
            ("traps", "5".into(), l),
            ("traps", "6".into(), l),
            ("traps", "7".into(), l),
            ("traps", "8".into(), l),
            ("traps", "9".into(), l),
            ("traps", "10".into(), l),
            ("load", "20".into(), l),
            ("crash", "50".into(), l),
            ("spin", "0".into(), limits(1_000_000)),
            ("grow", "0".into(), tight),
            ("grow_past_max", "30".into(), l),
            ("grow_past_max", "19".into(), tight),
        ],
    );
    // Every fuel limit near the end of a task whose last checks decide how it ends.
    let tail = guest("1", TAIL);
    let needed = in_sandbox(&sandbox().compile(&tail).unwrap(), "tail", "5", &l).fuel;
    let sweep: Vec<_> = (needed - 800..=needed)
        .map(|fuel| ("tail", "5".to_owned(), limits(fuel)))
        .collect();
    agree_in_node(&tail, &sweep);

    let small = Limits {
        memory_bytes: 8 << 20,
        ..l
    };
    agree_in_node(
        &wasm("testbed"),
        &[
            ("square", "12".into(), l),
            ("wobble", "17".into(), l),
            ("unbounded", "0".into(), l),
            ("explode", "3".into(), l),
            ("wild_read", "4294967200".into(), l),
            ("hog", "100".into(), small),
            ("spin", "0".into(), limits(50_000_000)),
            ("chatty_panic", "5".into(), l),
        ],
    );
    agree_in_node(
        &wasm("pi"),
        &cases(&[("hits", "1"), ("estimate", "[3141592,1]")]),
    );
    agree_in_node(
        &wasm("factorise"),
        &cases(&[("factorise", "600851475143"), ("factorise", "1000000007")]),
    );
    let view = r#"{"width":80,"height":60,"center_re":-0.6,"center_im":0.0,"pixel":0.0375,"max_iterations":500}"#;
    agree_in_node(
        &wasm("mandelbrot"),
        &[("rows", format!("[{view},3,10]"), l)],
    );
}
