//! Golden tests: the exact JSON of every message. A change here is a protocol change: bump
//! `PROTOCOL_VERSION` and update docs/ARCHITECTURE.md with it.

use dipla_protocol::{
    Agent, Benchmark, FailureKind, Hello, KernelRun, ModuleHash, Nonce, PROTOCOL_VERSION,
    PublicKey, RawJson, Secret, ServerMessage, Signature, TaskBatch, TaskFailure, TaskItem,
    TaskLimits, TaskResult, Welcome, WorkerMessage,
};

fn raw(text: &str) -> Box<RawJson> {
    RawJson::from_string(text.to_owned()).unwrap()
}

fn hash() -> ModuleHash {
    ModuleHash::of(b"abc")
}

const HASH: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// Serialises `message`, compares it with `golden`, and checks that `golden` parses back to
/// the same JSON.
fn pin<T: serde::Serialize + serde::de::DeserializeOwned>(message: &T, golden: &str) {
    let text = serde_json::to_string(message).unwrap();
    assert_eq!(text, golden);
    let back: T = serde_json::from_str(golden).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), golden);
}

#[test]
fn protocol_version_is_three() {
    // 3: every result, failures included, is signed in the receipt.
    assert_eq!(PROTOCOL_VERSION, 3);
}

#[test]
fn hello() {
    pin(
        &WorkerMessage::Hello(Hello {
            protocol: 1,
            name: "volunteer-7".into(),
            version: "0.1.0".into(),
            cores: 4,
            max_memory_mb: 512,
            max_fuel: 1_000_000,
            max_module_mb: None,
            benchmark: None,
            token: None,
            identity: None,
            agent: None,
        }),
        r#"{"hello":{"protocol":1,"name":"volunteer-7","version":"0.1.0","cores":4,"max_memory_mb":512,"max_fuel":1000000}}"#,
    );
}

#[test]
fn hello_with_a_benchmark() {
    pin(
        &WorkerMessage::Hello(Hello {
            protocol: 1,
            name: "w".into(),
            version: "0.1.0".into(),
            cores: 2,
            max_memory_mb: 256,
            max_fuel: 10,
            max_module_mb: Some(64),
            benchmark: Some(Benchmark {
                score: 2500.5,
                kernels: vec![KernelRun {
                    name: "int_chain".into(),
                    fuel: 400_000_012,
                    micros: 27_000,
                    checksum: "00ff00ff00ff00ff".into(),
                }],
            }),
            token: Some(Secret("s3cret".into())),
            identity: Some(PublicKey([0xab; 32])),
            agent: None,
        }),
        &format!(
            r#"{{"hello":{{"protocol":1,"name":"w","version":"0.1.0","cores":2,"max_memory_mb":256,"max_fuel":10,"max_module_mb":64,"benchmark":{{"score":2500.5,"kernels":[{{"name":"int_chain","fuel":400000012,"micros":27000,"checksum":"00ff00ff00ff00ff"}}]}},"token":"s3cret","identity":"{}"}}}}"#,
            "ab".repeat(32)
        ),
    );
}

#[test]
fn hello_from_a_browser() {
    pin(
        &WorkerMessage::Hello(Hello {
            protocol: 3,
            name: "browser".into(),
            version: "0.1.0".into(),
            cores: 2,
            max_memory_mb: 1024,
            max_fuel: 100,
            max_module_mb: Some(64),
            benchmark: None,
            token: None,
            identity: None,
            agent: Some(Agent::Browser),
        }),
        r#"{"hello":{"protocol":3,"name":"browser","version":"0.1.0","cores":2,"max_memory_mb":1024,"max_fuel":100,"max_module_mb":64,"agent":"browser"}}"#,
    );
    // A native worker may say so; an agent this server does not know is taken as native.
    for (agent, read) in [("native", Agent::Native), ("a-robot", Agent::Native)] {
        let text = format!(
            r#"{{"hello":{{"protocol":3,"name":"w","version":"1","cores":1,"max_memory_mb":1,"max_fuel":1,"agent":"{agent}"}}}}"#
        );
        let Ok(WorkerMessage::Hello(hello)) = serde_json::from_str(&text) else {
            panic!("{text} is a hello");
        };
        assert_eq!(hello.agent, Some(read));
    }
    assert_eq!(Agent::Browser.name(), "browser");
    assert_eq!(Agent::default().name(), "native");
}

#[test]
fn instrumented() {
    pin(
        &ServerMessage::Instrumented {
            module: hash(),
            sha256: ModuleHash::of(b"instrumented"),
        },
        &format!(
            r#"{{"instrumented":{{"module":"{HASH}","sha256":"{}"}}}}"#,
            ModuleHash::of(b"instrumented")
        ),
    );
}

#[test]
fn fetch_module() {
    pin(
        &WorkerMessage::FetchModule {
            hashes: vec![hash()],
        },
        &format!(r#"{{"fetch_module":{{"hashes":["{HASH}"]}}}}"#),
    );
}

#[test]
fn results() {
    pin(
        &WorkerMessage::Results {
            results: vec![
                TaskResult::success(7, 1200, 35, raw("[2,2,3]")),
                TaskResult::failure(
                    8,
                    10,
                    4,
                    TaskFailure {
                        kind: FailureKind::Panic,
                        message: "boom".into(),
                    },
                ),
            ],
            receipt: Some(Signature([0x01; 64])),
        },
        &format!(
            r#"{{"results":{{"results":[{{"id":7,"fuel":1200,"micros":35,"output":[2,2,3]}},{{"id":8,"fuel":10,"micros":4,"error":{{"kind":"panic","message":"boom"}}}}],"receipt":"{}"}}}}"#,
            "01".repeat(64)
        ),
    );
}

#[test]
fn failure_kinds() {
    let kinds = [
        (FailureKind::Guest, "guest"),
        (FailureKind::Panic, "panic"),
        (FailureKind::Trap, "trap"),
        (FailureKind::OutOfFuel, "out_of_fuel"),
        (FailureKind::MemoryLimit, "memory_limit"),
        (FailureKind::StackOverflow, "stack_overflow"),
        (FailureKind::Timeout, "timeout"),
        (FailureKind::Rejected, "rejected"),
        (FailureKind::BadOutput, "bad_output"),
        (FailureKind::Worker, "worker"),
        (FailureKind::Upstream, "upstream"),
        (FailureKind::Stopped, "stopped"),
    ];
    for (kind, text) in kinds {
        pin(&kind, &format!("\"{text}\""));
    }
}

#[test]
fn welcome() {
    pin(
        &ServerMessage::Welcome(Welcome {
            protocol: 1,
            worker: 3,
            heartbeat_ms: None,
            job: None,
            pause: false,
        }),
        r#"{"welcome":{"protocol":1,"worker":3}}"#,
    );
}

#[test]
fn tasks() {
    pin(
        &ServerMessage::Tasks(TaskBatch {
            module: hash(),
            export: "factorise".into(),
            limits: TaskLimits {
                fuel: 5000,
                memory_mb: 64,
                timeout_ms: 1000,
            },
            tasks: vec![
                TaskItem {
                    id: 1,
                    input: raw("12"),
                },
                TaskItem {
                    id: 2,
                    input: raw(r#"[1,"a"]"#),
                },
            ],
        }),
        &format!(
            r#"{{"tasks":{{"module":"{HASH}","export":"factorise","limits":{{"fuel":5000,"memory_mb":64,"timeout_ms":1000}},"tasks":[{{"id":1,"input":12}},{{"id":2,"input":[1,"a"]}}]}}}}"#
        ),
    );
}

#[test]
fn a_result_that_stops_its_stage() {
    let mut result = TaskResult::success(9, 100, 7, raw("\"found\""));
    result.stop = true;
    pin(
        &WorkerMessage::Results {
            results: vec![result],
            receipt: None,
        },
        r#"{"results":{"results":[{"id":9,"fuel":100,"micros":7,"output":"found","stop":true}]}}"#,
    );
}

#[test]
fn a_result_with_the_task_s_log() {
    let mut result = TaskResult::failure(
        4,
        50,
        3,
        TaskFailure {
            kind: FailureKind::Guest,
            message: "odd".into(),
        },
    );
    result.log = Some("checking 3\nodd!\n".into());
    pin(
        &WorkerMessage::Results {
            results: vec![result],
            receipt: None,
        },
        r#"{"results":{"results":[{"id":4,"fuel":50,"micros":3,"error":{"kind":"guest","message":"odd"},"log":"checking 3\nodd!\n"}]}}"#,
    );
}

#[test]
fn challenge_and_proof() {
    pin(
        &ServerMessage::Challenge {
            nonce: Nonce([0x5a; 32]),
        },
        &format!(r#"{{"challenge":{{"nonce":"{}"}}}}"#, "5a".repeat(32)),
    );
    pin(
        &WorkerMessage::Proof {
            signature: Signature([0xc3; 64]),
        },
        &format!(r#"{{"proof":{{"signature":"{}"}}}}"#, "c3".repeat(64)),
    );
}

#[test]
fn cancel() {
    pin(
        &ServerMessage::Cancel { ids: vec![4, 5] },
        r#"{"cancel":{"ids":[4,5]}}"#,
    );
}

#[test]
fn heartbeat() {
    pin(&ServerMessage::Heartbeat {}, r#"{"heartbeat":{}}"#);
}

#[test]
fn goodbye() {
    pin(
        &ServerMessage::Goodbye {
            reason: "job finished".into(),
            rejoin: false,
        },
        r#"{"goodbye":{"reason":"job finished"}}"#,
    );
    pin(
        &ServerMessage::Goodbye {
            reason: "moved to another job".into(),
            rejoin: true,
        },
        r#"{"goodbye":{"reason":"moved to another job","rejoin":true}}"#,
    );
}

#[test]
fn a_result_must_have_exactly_one_outcome() {
    let both: TaskResult = serde_json::from_str(
        r#"{"id":1,"fuel":0,"micros":0,"output":1,"error":{"kind":"panic","message":"x"}}"#,
    )
    .unwrap();
    assert!(both.outcome().is_none());
    let neither: TaskResult = serde_json::from_str(r#"{"id":1,"fuel":0,"micros":0}"#).unwrap();
    assert!(neither.outcome().is_none());
}

#[test]
fn a_null_output_is_an_output() {
    // `Option::None`, `()` and NaN floats are `null`: a result like any other, never absent.
    for output in ["null", "[null,1]", r#"{"a":null}"#] {
        let golden = format!(
            r#"{{"results":{{"results":[{{"id":3,"fuel":5,"micros":1,"output":{output}}}]}}}}"#
        );
        pin(
            &WorkerMessage::Results {
                results: vec![TaskResult::success(3, 5, 1, raw(output))],
                receipt: None,
            },
            &golden,
        );
        let Ok(WorkerMessage::Results { results, .. }) = serde_json::from_str(&golden) else {
            panic!("{golden} is a results message");
        };
        let outcome = results[0].outcome().expect("exactly one outcome");
        assert_eq!(outcome.unwrap().get(), output);
        let owned = results.into_iter().next().unwrap().into_outcome();
        assert_eq!(owned.unwrap().unwrap().get(), output);
    }
    // `null` beside an error is still two outcomes; an absent output beside an error is one.
    let both: TaskResult = serde_json::from_str(
        r#"{"id":1,"fuel":0,"micros":0,"output":null,"error":{"kind":"panic","message":"x"}}"#,
    )
    .unwrap();
    assert!(both.outcome().is_none());
    let failed: TaskResult = serde_json::from_str(
        r#"{"id":1,"fuel":0,"micros":0,"error":{"kind":"panic","message":"x"}}"#,
    )
    .unwrap();
    assert!(failed.outcome().unwrap().is_err());
}

#[test]
fn unknown_message_types_are_errors() {
    assert!(serde_json::from_str::<WorkerMessage>(r#"{"steal_everything":{}}"#).is_err());
    assert!(serde_json::from_str::<ServerMessage>(r#"{"hello":{}}"#).is_err());
}

#[test]
fn tokens_never_show_in_debug_output() {
    let secret = Secret("s3cret".into());
    assert!(!format!("{secret:?}").contains("s3cret"));
}

#[test]
fn welcome_with_a_heartbeat() {
    pin(
        &ServerMessage::Welcome(Welcome {
            protocol: 1,
            worker: 3,
            heartbeat_ms: Some(5000),
            job: Some("f00d".into()),
            pause: false,
        }),
        r#"{"welcome":{"protocol":1,"worker":3,"heartbeat_ms":5000,"job":"f00d"}}"#,
    );
}

#[test]
fn welcome_from_a_server_that_understands_pauses() {
    pin(
        &ServerMessage::Welcome(Welcome {
            protocol: 3,
            worker: 3,
            heartbeat_ms: Some(5000),
            job: Some("f00d".into()),
            pause: true,
        }),
        r#"{"welcome":{"protocol":3,"worker":3,"heartbeat_ms":5000,"job":"f00d","pause":true}}"#,
    );
}

#[test]
fn pause_and_resume() {
    pin(
        &WorkerMessage::Pause {
            reason: "on battery".into(),
        },
        r#"{"pause":{"reason":"on battery"}}"#,
    );
    pin(&WorkerMessage::Resume {}, r#"{"resume":{}}"#);
}

#[test]
fn both_sides_ignore_fields_they_do_not_know() {
    // What makes `pause` in the welcome safe for older workers, and newer hellos safe for
    // older servers.
    let welcome: ServerMessage = serde_json::from_str(
        r#"{"welcome":{"protocol":3,"worker":1,"pause":true,"from_the_future":[1]}}"#,
    )
    .unwrap();
    assert!(matches!(
        welcome,
        ServerMessage::Welcome(Welcome { pause: true, .. })
    ));
    let hello: WorkerMessage = serde_json::from_str(
        r#"{"hello":{"protocol":3,"name":"w","version":"9","cores":1,"max_memory_mb":1,"max_fuel":1,"from_the_future":{}}}"#,
    )
    .unwrap();
    assert!(matches!(hello, WorkerMessage::Hello(_)));
}
