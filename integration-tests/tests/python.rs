//! Python guests end to end: the examples in `examples/python/` run as a user would, their
//! answers compared with the same functions under native CPython; a remote worker fetching,
//! compiling and running a component; what a sandboxed Python task must not get away with;
//! and replicas of Python tasks agreeing bit for bit.

use std::path::{Path, PathBuf};
use std::process::Command;

use dipla_sandbox::Sandbox;
use dipla_server::{Job, RunOptions, Server, manifest};
use serde_json::{Value, json};

use crate::support::{JobDir, PATIENCE, WorkerProcess, finish, remote_server_with, root};

/// A Python guest built by `cargo xtask build-guests` into `target/python/`.
fn component(name: &str) -> PathBuf {
    let path = root().join(format!("target/python/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask build-guests`",
        path.display()
    );
    path
}

/// What `expression` gives under native CPython with the SDK and `module_dir` importable
/// (the virtual environment `cargo xtask build-guests` made), as JSON.
fn native(module_dir: &Path, imports: &str, expression: &str) -> Value {
    let python = root().join("target/python-venv/bin/python");
    let code = format!("import json, sys\n{imports}\nprint(json.dumps({expression}))");
    let out = Command::new(python)
        .arg("-c")
        .arg(code)
        .env("PYTHONPATH", module_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `job` on two local workers; its summary must say it succeeded.
async fn run_local(job: Job) -> Vec<Value> {
    let options = RunOptions {
        local_workers: 2,
        ..RunOptions::default()
    };
    let server = Server::bind(job, options).await.unwrap();
    let (summary, lines) = tokio::time::timeout(PATIENCE, finish(server))
        .await
        .unwrap();
    assert!(summary.success(), "{summary}");
    lines
}

fn example(name: &str) -> Job {
    let path = root().join("examples/python").join(name).join("job.toml");
    manifest::load(&path, &Sandbox::new().unwrap()).unwrap()
}

fn stage<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|line| line["stage"] == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_pi_matches_native_python_bit_for_bit() {
    let lines = run_local(example("pi")).await;
    let dir = root().join("examples/python/pi");
    let total = native(
        &dir,
        "import tasks",
        "sum(tasks.hits(s) for s in range(1, 101))",
    );
    assert_eq!(stage(&lines, "total")[0]["output"], total);
    let estimate = native(
        &dir,
        "import tasks",
        &format!("tasks.estimate({total}, 100)"),
    );
    assert_eq!(stage(&lines, "pi")[0]["output"], estimate);
    let pi = estimate.as_f64().unwrap();
    assert!((pi - std::f64::consts::PI).abs() < 0.02, "{pi}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_factorise_is_verified_and_matches_native_python() {
    let lines = run_local(example("factorise")).await;
    let dir = root().join("examples/python/factorise");
    let expected = native(
        &dir,
        "import tasks",
        "[tasks.factorise(n) for n in range(1000000000000, 1000000000200)]",
    );
    let outputs: Vec<&Value> = lines.iter().map(|line| &line["output"]).collect();
    assert_eq!(
        Value::from(outputs.into_iter().cloned().collect::<Vec<_>>()),
        expected
    );
    assert!(
        lines.iter().all(|line| line["check"] == "verified"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_wordcount_matches_native_python() {
    let lines = run_local(example("wordcount")).await;
    let dir = root().join("examples/python/wordcount");
    let story = root().join("examples/wordcount/keeper.jsonl");
    let expected = native(
        &dir,
        &format!(
            "import tasks, functools\nparagraphs = [json.loads(l) for l in open({:?}) if l.strip()]",
            story.display().to_string()
        ),
        "tasks.top(functools.reduce(tasks.merge, map(tasks.count, paragraphs)), 20)",
    );
    assert_eq!(stage(&lines, "top")[0]["output"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_fetches_compiles_and_runs_a_python_component() {
    let (server, url) = remote_server_with(example("pi"), RunOptions::default()).await;
    let finished = tokio::spawn(tokio::time::timeout(PATIENCE, finish(server)));
    // A volunteer who takes modules up to 16 MiB is told which module is over, and why,
    // before anything is sent to it; it stops.
    let mut small = WorkerProcess::with_args(
        &url,
        "small",
        tempfile::tempdir().unwrap(),
        &["--max-module-mb", "16"],
    );
    let refusal = small.said.line("module pi is").await;
    assert!(
        refusal.contains("MiB, over this worker's limit of 16 MiB (--max-module-mb)"),
        "{refusal}"
    );
    assert!(
        !small.wait_success(),
        "a refused worker exits with an error"
    );
    let _worker = WorkerProcess::start(&url, "py");
    let (summary, lines) = finished.await.unwrap().unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(
        summary.stats.module_transfers, 1,
        "the refused worker was sent nothing: {summary}"
    );
    let dir = root().join("examples/python/pi");
    let total = native(
        &dir,
        "import tasks",
        "sum(tasks.hits(s) for s in range(1, 101))",
    );
    assert_eq!(stage(&lines, "total")[0]["output"], total);
}

/// A job of `probes.py`'s task `task` over `inputs`, with `extra` stage keys.
fn probes_job(task: &str, inputs: &Value, extra: &str) -> JobDir {
    JobDir::new(&format!(
        r#"
        name = "probes"
        [modules]
        p = {module:?}
        [[stages]]
        name = "s"
        task = "p.{task}"
        inputs = {{ values = {inputs} }}
        max_attempts = 1
        {extra}
        [limits]
        fuel = 2_000_000_000
        memory_mb = 64
        "#,
        module = component("probes").display().to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_python_task_must_not_do_fails_it_and_the_worker_serves_on() {
    let probes = [
        "raise",
        "open",
        "socket",
        "subprocess",
        "loop",
        "bomb",
        "recursion",
        "deep",
    ];
    let job = probes_job("probe", &json!(probes), "");
    let (server, url) = remote_server_with(job.job(), RunOptions::default()).await;
    let _worker = WorkerProcess::start(&url, "prober");
    let (summary, lines) = tokio::time::timeout(PATIENCE, finish(server))
        .await
        .unwrap();
    assert_eq!(summary.counts.failed, probes.len() as u64, "{summary}");
    let failure = |probe: &str| -> (String, String) {
        let line = lines.iter().find(|line| line["input"] == probe).unwrap();
        (
            line["kind"].as_str().unwrap().to_owned(),
            line["error"].as_str().unwrap().to_owned(),
        )
    };
    let (kind, message) = failure("raise");
    assert_eq!(kind, "panic");
    assert!(
        message.starts_with("panic: ValueError: no such thing"),
        "{message}"
    );
    assert!(
        message.contains("probes.py:"),
        "the frame is named: {message}"
    );
    assert!(
        failure("open").1.contains("FileNotFoundError"),
        "{:?}",
        failure("open")
    );
    assert!(
        failure("socket").1.contains("PermissionError"),
        "{:?}",
        failure("socket")
    );
    assert!(
        failure("subprocess")
            .1
            .contains("does not support processes"),
        "{:?}",
        failure("subprocess")
    );
    assert_eq!(failure("loop").0, "out_of_fuel");
    assert_eq!(failure("bomb").0, "memory_limit");
    // Python 3.14 keeps its frames in linear memory: a runaway recursion ends at the memory
    // or fuel limit, deterministically; at the default recursion limit, Python stops it.
    assert!(
        ["memory_limit", "out_of_fuel"].contains(&failure("recursion").0.as_str()),
        "{:?}",
        failure("recursion")
    );
    let (kind, message) = failure("deep");
    assert_eq!(kind, "panic");
    assert!(message.starts_with("panic: RecursionError"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_python_tasks_agree_bit_for_bit() {
    let seeds: Vec<u64> = (1..=6).collect();
    let job = probes_job("entropy", &json!(seeds), "replicate = 1.0\nquorum = 2");
    let (server, url) = remote_server_with(job.job(), RunOptions::default()).await;
    let _first = WorkerProcess::start(&url, "first");
    let _second = WorkerProcess::start(&url, "second");
    let (summary, lines) = tokio::time::timeout(PATIENCE, finish(server))
        .await
        .unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(
        summary.counts.untrusted, 0,
        "honest workers agree: {summary}"
    );
    assert!(
        lines.iter().all(|line| line["check"] == "replicated:2"),
        "{lines:?}"
    );
    // Fixed clocks, and random numbers that depend on the input only.
    assert_eq!(lines[0]["output"][3], json!(946_684_800.0));
    assert_ne!(lines[0]["output"][1], lines[1]["output"][1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refuses_a_module_over_its_limit_by_name() {
    let options = RunOptions {
        max_module_mb: 16,
        ..RunOptions::default()
    };
    let Err(error) = Server::bind(example("pi"), options).await else {
        panic!("a 19 MB module is over a 16 MiB limit");
    };
    let error = error.to_string();
    assert!(
        error.starts_with("module pi is 1")
            && error.ends_with("MiB, over this server's limit of 16 MiB (--max-module-mb)"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_exploration_and_an_early_stop_shape_their_stages() {
    let job = JobDir::new(&format!(
        r#"
        name = "shapes"
        [modules]
        s = {module:?}
        [[stages]]
        name = "reach"
        task = "s.reach"
        inputs = {{ values = [1] }}
        explore = {{ max_tasks = 1000 }}
        [[stages]]
        name = "squares"
        task = "s.square"
        inputs = {{ stage = "reach" }}
        [[stages]]
        name = "total"
        task = "s.add"
        reduce = {{ stage = "squares", fan_in = 3 }}
        [[stages]]
        name = "search"
        task = "s.seek"
        inputs = {{ range = {{ start = 0, end = 1000000 }} }}
        stop_after = 2
        "#,
        module = component("shapes").display().to_string(),
    ));
    let lines = run_local(job.job()).await;
    let mut reached: Vec<u64> = stage(&lines, "reach")
        .iter()
        .map(|line| line["output"].as_u64().unwrap())
        .collect();
    reached.sort_unstable();
    assert_eq!(
        reached,
        (1..=100).collect::<Vec<u64>>(),
        "each number 1..=100 exactly once"
    );
    assert_eq!(stage(&lines, "squares").len(), 100);
    assert_eq!(
        stage(&lines, "total")[0]["output"],
        (1..=100u64).map(|x| x * x).sum::<u64>()
    );
    let search = stage(&lines, "search");
    let goals = search
        .iter()
        .filter(|line| line["output"].as_u64().unwrap() % 1000 == 777)
        .count();
    assert!(goals >= 2, "both goals are in the results");
    assert!(
        search.len() < 100_000,
        "the stage went on after its goal: {} lines",
        search.len()
    );
}

/// Pure-Python dependencies are bundled from beside the script, from `-p` folders and from
/// the site-packages of the Python that runs `dipla-py` (a virtual environment that is not
/// activated included), and run in the component as they do natively.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pure_python_dependencies_are_bundled_into_the_component() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "app/tasks.py",
        "import dipla\nimport neighbour, vendored, installed\n\n\
         @dipla.task\ndef tag(x: int) -> str:\n    \
         return f\"{neighbour.NAME}-{vendored.NAME}-{installed.twice(x)}\"\n",
    );
    write("app/neighbour.py", "NAME = 'beside'\n");
    write("vendor/vendored/__init__.py", "NAME = 'vendored'\n");
    // A virtual environment of its own, not activated, that sees the SDK's (for dipla and
    // componentize-py) and holds a package nothing else has.
    let python = root().join("target/python-venv/bin/python");
    let venv = dir.path().join("venv");
    let made = Command::new(&python)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(made.success());
    let site = |python: &Path| -> PathBuf {
        let out = Command::new(python)
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ])
            .output()
            .unwrap();
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    };
    let own = site(&venv.join("bin/python"));
    std::fs::write(
        own.join("sdk.pth"),
        format!("{}\n", site(&python).display()),
    )
    .unwrap();
    std::fs::create_dir_all(own.join("installed")).unwrap();
    std::fs::write(
        own.join("installed/__init__.py"),
        "def twice(x):\n    return 2 * x\n",
    )
    .unwrap();
    let wasm = dir.path().join("tasks.wasm");
    let built = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import sys; from dipla.build import main; sys.exit(main())",
        ])
        .args(["build", "-q"])
        .arg(dir.path().join("app/tasks.py"))
        .arg("-p")
        .arg(dir.path().join("vendor"))
        .arg("-o")
        .arg(&wasm)
        .env_remove("VIRTUAL_ENV")
        .env_remove("PYTHONPATH")
        // componentize-py is a program of the SDK's environment: found on PATH.
        .env(
            "PATH",
            format!(
                "{}:{}",
                python.parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let job = JobDir::new(&format!(
        r#"
        name = "bundled"
        [modules]
        t = {module:?}
        [[stages]]
        name = "tag"
        task = "t.tag"
        inputs = {{ values = [21] }}
        [limits]
        fuel = 10_000_000_000
        memory_mb = 64
        "#,
        module = wasm.display().to_string(),
    ));
    let lines = run_local(job.job()).await;
    assert_eq!(lines[0]["output"], "beside-vendored-42");
}
