//! Browser volunteers: the `/volunteer` page in headless Chromium joins the server as a worker
//! beside a native `dipla-worker`, and every answer of a job whose every task is run by both
//! (`replicate = 1.0`, `quorum = 2`) agrees bit for bit: outputs and fuel, integer, struct and
//! float-heavy tasks and NaNs included; failures agree in kind and message (and fuel where the
//! sandbox's is deterministic). Hostile guests are contained while the page serves on; a
//! reload keeps the page's identity; a page that lies is caught like any liar.

use dipla_server::RunOptions;

use crate::support::{
    Browser, JobDir, Page, WorkerProcess, addr_of, eventually, eventually_async, finish, http,
    remote_server, remote_server_with, root, squares_job, wasm, watch,
};

/// A guest that makes NaNs at run time (from its input's length, so no engine can fold them)
/// and returns their bits as hex: 0/0, the square root of -x, the same in f32, and the
/// negation of 0/0 (a sign flip, never canonicalised). Canonicalised, a NaN is
/// 7ff8000000000000 (f64) or 7fc00000 (f32); on x86, unless canonicalised, 0/0 is
/// fff8000000000000.
const NAN_GUEST: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    ;; Writes the 16 hex digits of $bits at $at.
    (func $hex (param $bits i64) (param $at i32)
        (local $i i32) (local $nibble i32)
        (loop $l
            (local.set $nibble (i32.wrap_i64 (i64.and (i64.shr_u (local.get $bits)
                (i64.extend_i32_u (i32.sub (i32.const 60) (i32.mul (local.get $i) (i32.const 4)))))
                (i64.const 15))))
            (i32.store8 (i32.add (local.get $at) (local.get $i))
                (i32.add (local.get $nibble)
                    (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $nibble) (i32.const 10)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 16)))))
    (func (export "nan") (param $ptr i32) (param $len i32) (result i64)
        (local $x f64) (local $zero f64) (local $y f32)
        (local.set $x (f64.convert_i32_u (local.get $len)))
        (local.set $zero (f64.sub (local.get $x) (local.get $x)))
        (local.set $y (f32.demote_f64 (local.get $zero)))
        ;; status 0, then "a b c d e" as a JSON string: 1 + 1 + 4 * 17 + 16 + 1 bytes.
        (i32.store8 (i32.const 0) (i32.const 0))
        (i32.store8 (i32.const 1) (i32.const 34))
        (call $hex (i64.reinterpret_f64 (f64.div (local.get $zero) (local.get $zero))) (i32.const 2))
        (i32.store8 (i32.const 18) (i32.const 32))
        (call $hex (i64.reinterpret_f64 (f64.sqrt (f64.neg (local.get $x)))) (i32.const 19))
        (i32.store8 (i32.const 35) (i32.const 32))
        (call $hex (i64.extend_i32_u (i32.reinterpret_f32 (f32.div (local.get $y) (local.get $y)))) (i32.const 36))
        (i32.store8 (i32.const 52) (i32.const 32))
        (call $hex (i64.reinterpret_f64 (f64.neg (f64.div (local.get $zero) (local.get $zero)))) (i32.const 53))
        (i32.store8 (i32.const 69) (i32.const 32))
        (call $hex (i64.reinterpret_f64 (f64.add (f64.div (local.get $zero) (local.get $zero)) (local.get $x))) (i32.const 70))
        (i32.store8 (i32.const 86) (i32.const 34))
        (i64.const 87))
    (@custom "dipla" "{\"abi\":1,\"task\":\"nan\"}\n"))"#;

/// A guest whose tasks trap in the ways engines word differently from wasmtime: a division
/// by zero, a remainder by zero, an overflowing division, a NaN and an out-of-range float
/// converted to an integer, a null table element called, a signature mismatch, an element
/// out of the table, an out-of-bounds load.
const TRAPS_GUEST: &str = r#"(module
    (memory (export "memory") 1)
    (type $t (func (result i32)))
    (table 3 funcref)
    (func $other (result i64) (i64.const 1))
    (elem (i32.const 1) $other)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    ;; x: the input's length, so nothing is known before the task runs.
    (func (export "div0") (param i32) (param $len i32) (result i64)
        (i64.extend_i32_u (i32.div_u (local.get $len) (i32.sub (local.get $len) (local.get $len)))))
    (func (export "rem0") (param i32) (param $len i32) (result i64)
        (i64.extend_i32_u (i32.rem_s (local.get $len) (i32.sub (local.get $len) (local.get $len)))))
    (func (export "overflow") (param i32) (param $len i32) (result i64)
        (i64.extend_i32_s (i32.div_s (i32.shl (local.get $len) (i32.const 31)) (i32.const -1))))
    (func (export "nan_to_int") (param i32) (param $len i32) (result i64)
        (local $zero f64)
        (local.set $zero (f64.sub (f64.convert_i32_u (local.get $len)) (f64.convert_i32_u (local.get $len))))
        (i64.extend_i32_s (i32.trunc_f64_s (f64.div (local.get $zero) (local.get $zero)))))
    (func (export "huge_to_int") (param i32) (param $len i32) (result i64)
        (i64.extend_i32_s (i32.trunc_f64_s (f64.mul (f64.convert_i32_u (local.get $len)) (f64.const 1e20)))))
    (func (export "null_call") (param i32) (param $len i32) (result i64)
        (i64.extend_i32_s (call_indirect (type $t) (i32.sub (local.get $len) (local.get $len)))))
    (func (export "wrong_type") (param i32) (param $len i32) (result i64)
        (i64.extend_i32_s (call_indirect (type $t) (i32.div_u (local.get $len) (local.get $len)))))
    (func (export "past_table") (param i32) (param $len i32) (result i64)
        (i64.extend_i32_s (call_indirect (type $t) (i32.add (local.get $len) (i32.const 7)))))
    (func (export "wild") (param i32) (param $len i32) (result i64)
        (i64.load (i32.sub (i32.const 0) (local.get $len))))
    (@custom "dipla" "{\"abi\":1,\"task\":\"div0\"}\n{\"abi\":1,\"task\":\"rem0\"}\n{\"abi\":1,\"task\":\"overflow\"}\n{\"abi\":1,\"task\":\"nan_to_int\"}\n{\"abi\":1,\"task\":\"huge_to_int\"}\n{\"abi\":1,\"task\":\"null_call\"}\n{\"abi\":1,\"task\":\"wrong_type\"}\n{\"abi\":1,\"task\":\"past_table\"}\n{\"abi\":1,\"task\":\"wild\"}\n"))"#;

/// Each trap of [`TRAPS_GUEST`] as the sandbox words it.
const TRAPS: &[(&str, &str)] = &[
    ("div0", "integer divide by zero"),
    ("rem0", "integer divide by zero"),
    ("overflow", "integer overflow"),
    ("nan_to_int", "invalid conversion to integer"),
    ("huge_to_int", "integer overflow"),
    ("null_call", "uninitialized element"),
    ("wrong_type", "indirect call type mismatch"),
    (
        "past_table",
        "undefined element: out of bounds table access",
    ),
    ("wild", "out of bounds memory access"),
];

/// The page, joining at once (`?start`) with one core unless `extra` query flags say.
fn volunteer_url(url: &str, extra: &str) -> String {
    let http = url.replace("ws://", "http://").replace("/ws", "");
    let cores = if extra.contains("cores=") {
        ""
    } else {
        "&cores=1"
    };
    format!("{http}/volunteer?start{cores}{extra}")
}

/// The page at `url` in a fresh headless Chromium, with a DevTools connection to it.
async fn open_page(url: &str) -> (Browser, Page) {
    let browser = Browser::open(url).unwrap();
    let page = browser.page(url).await.unwrap();
    (browser, page)
}

/// Waits until the server has a browser worker, and returns its identity.
async fn browser_identity(handle: &dipla_server::Handle, not: Option<u64>) -> (u64, String) {
    eventually_async("a browser worker joined", async || {
        handle.workers().into_iter().find_map(|worker| {
            let record = worker.record.as_ref()?;
            (worker.agent == "browser" && Some(worker.id) != not)
                .then(|| (worker.id, record.identity.clone()))
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_and_a_native_worker_agree_bit_for_bit() {
    let nan = tempfile::tempdir().unwrap();
    let nan_path = nan.path().join("nan.wasm");
    std::fs::write(&nan_path, wat::parse_str(NAN_GUEST).unwrap()).unwrap();
    // Every stage replicated on both workers: (name, task, inputs, anything more).
    let stages: String = [
        ("squares", "bed.square", "{ range = { start = 0, end = 40 } }", ""),
        ("factors", "factor.factorise", "{ range = { start = 1000000000000, end = 1000000000012 } }", ""),
        ("structs", "bed.holes", "{ range = { start = 0, end = 6 } }", ""),
        ("strings", "bed.describe", r#"{ values = [["apples", 3, ["red", "green"]], ["Zoë ✓", 0, []]] }"#, ""),
        ("pi", "pi.hits", "{ range = { start = 1, end = 5 } }", ""),
        ("mandelbrot", "mandelbrot.rows", "{ scatter = { value = { width = 160, height = 64, center_re = -0.6, center_im = 0.0, pixel = 0.02, max_iterations = 300 }, count = 4 } }", ""),
        ("wobble", "bed.wobble", "{ range = { start = 0, end = 12 } }", ""),
        ("nan", "nan.nan", "{ values = [1, 22, 333] }", "check_types = false"),
        ("unbounded", "bed.unbounded", "{ range = { start = 0, end = 4 } }", ""),
    ]
    .iter()
    .map(|(name, task, inputs, more)| {
        format!(
            "[[stages]]\nname = \"{name}\"\ntask = \"{task}\"\ninputs = {inputs}\n{more}\n\
             replicate = 1.0\nquorum = 2\n"
        )
    })
    .collect();
    let job = JobDir::new(&format!(
        r#"
        name = "agree"
        [modules]
        bed = "{{testbed}}"
        factor = "{{factorise}}"
        pi = "{pi}"
        mandelbrot = "{mandelbrot}"
        nan = "{nan}"
        {stages}
        "#,
        pi = wasm("pi").display(),
        mandelbrot = wasm("mandelbrot").display(),
        nan = nan_path.display(),
    ));
    let options = RunOptions {
        min_workers: 2,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));
    let _native = WorkerProcess::start(&url, "native");
    let page_url = volunteer_url(&url, "");
    let (_browser, _page) = open_page(&page_url).await;
    browser_identity(&handle, None).await;
    let (summary, lines) = run.await.unwrap();

    assert!(summary.success(), "{summary:?}");
    assert_eq!(summary.counts.untrusted, 0, "{summary:?}");
    for line in &lines {
        assert_eq!(line["check"], "replicated:2", "{line}");
        assert!(line.get("output").is_some(), "{line}");
    }
    let outputs = |stage: &str| -> Vec<serde_json::Value> {
        lines
            .iter()
            .filter(|line| line["stage"] == stage)
            .map(|line| line["output"].clone())
            .collect()
    };
    assert_eq!(outputs("squares")[7], 49);
    assert_eq!(
        outputs("factors")[0],
        serde_json::json!(factorise::factorise(1_000_000_000_000))
    );
    let pi: Vec<u64> = (1..5).map(pi::hits).collect();
    assert_eq!(
        outputs("pi"),
        serde_json::json!(pi).as_array().unwrap().clone()
    );
    // Canonical NaNs, whatever the engine: the negation flips only the sign.
    let canonical =
        "7ff8000000000000 7ff8000000000000 000000007fc00000 fff8000000000000 7ff8000000000000";
    assert_eq!(outputs("nan"), vec![serde_json::json!(canonical); 3]);
    assert_eq!(
        outputs("unbounded"),
        serde_json::json!([null, null, null, 3.0])
            .as_array()
            .unwrap()
            .clone()
    );
}

/// Every hostile guest is contained in the browser as in the sandbox, with the same failure
/// (kind and message; fuel too where the sandbox's is deterministic), confirmed by both
/// workers; and the page goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_fail_alike_in_the_browser_and_the_page_serves_on() {
    let traps = tempfile::tempdir().unwrap();
    let traps_path = traps.path().join("traps.wasm");
    std::fs::write(&traps_path, wat::parse_str(TRAPS_GUEST).unwrap()).unwrap();
    let trap_stages: String = TRAPS
        .iter()
        .map(|(task, _)| {
            format!(
                "[[stages]]\nname = \"{task}\"\ntask = \"traps.{task}\"\n\
                 inputs = {{ values = [1] }}\ncheck_types = false\nmax_attempts = 2\n"
            )
        })
        .collect();
    let job = JobDir::new(
        &r#"
        name = "hostile"
        [modules]
        bed = "{testbed}"
        traps = "{traps_path}"
        [[stages]]
        name = "loop"
        task = "bed.spin"
        inputs = { values = [1] }
        max_attempts = 2
        [[stages]]
        name = "memory-bomb"
        task = "bed.hog"
        inputs = { values = [512] }
        max_attempts = 2
        [[stages]]
        name = "recursion-bomb"
        task = "bed.recurse"
        inputs = { values = [100000000] }
        max_attempts = 2
        [[stages]]
        name = "panic"
        task = "bed.explode"
        inputs = { values = [3] }
        max_attempts = 2
        [[stages]]
        name = "wild-pointer"
        task = "bed.wild_read"
        inputs = { values = [4294967280] }
        max_attempts = 2
        [[stages]]
        name = "error"
        task = "bed.even_only"
        inputs = { values = [3] }
        max_attempts = 2
        [[stages]]
        name = "flood"
        task = "bed.flood"
        inputs = { values = [20000000] }
        max_attempts = 2
        [[stages]]
        name = "good"
        task = "bed.square"
        inputs = { range = { start = 0, end = 50 } }
        replicate = 1.0
        quorum = 2
        {traps}
        [limits]
        fuel = 1_500_000_000
        memory_mb = 128
        "#
        .replace("{traps_path}", &traps_path.display().to_string())
        .replace("{traps}", &trap_stages),
    );
    let options = RunOptions {
        min_workers: 2,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let run = tokio::spawn(finish(server));
    let _native = WorkerProcess::start(&url, "native");
    let (_browser, _page) = open_page(&volunteer_url(&url, "")).await;
    let (summary, lines) = run.await.unwrap();

    let line = |stage: &str| lines.iter().find(|l| l["stage"] == stage).unwrap().clone();
    let error = |stage: &str| -> String {
        let line = line(stage);
        assert!(
            line.get("output").is_none(),
            "{stage} should have failed: {line}"
        );
        line["error"].as_str().unwrap().to_owned()
    };
    // Both workers said the same (kind and message, and fuel where it is deterministic).
    for stage in [
        "loop",
        "memory-bomb",
        "recursion-bomb",
        "panic",
        "wild-pointer",
        "error",
        "flood",
    ] {
        assert_eq!(line(stage)["check"], "replicated:2", "{}", line(stage));
    }
    assert_eq!(
        error("loop"),
        "out of fuel: the task used all of its 1500000000 fuel"
    );
    assert!(
        error("memory-bomb").starts_with("memory limit: linear memory would grow to")
            && error("memory-bomb").ends_with("bytes; the limit is 134217728"),
        "{}",
        error("memory-bomb")
    );
    assert_eq!(
        error("recursion-bomb"),
        "stack overflow: the task overflowed the 512 KiB wasm stack"
    );
    assert!(
        error("panic").starts_with("panic: exploded on 3 (at "),
        "{}",
        error("panic")
    );
    assert_eq!(error("wild-pointer"), "trap: out of bounds memory access");
    for (task, trap) in TRAPS {
        assert_eq!(line(task)["check"], "replicated:2", "{}", line(task));
        assert_eq!(error(task), format!("trap: {trap}"));
    }
    assert_eq!(error("error"), "task error: 3 is odd");
    assert!(
        error("flood").starts_with("bad output: the output is"),
        "{}",
        error("flood")
    );
    let good: Vec<_> = lines.iter().filter(|l| l["stage"] == "good").collect();
    assert_eq!(good.len(), 50);
    assert!(good.iter().all(|l| l["check"] == "replicated:2"));
    assert_eq!(summary.counts.untrusted, 0, "{summary:?}");
}

/// A task past its wall-clock limit: the page terminates that task's Web Worker, reports a
/// timeout as the native worker does, starts a new runner and serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_past_its_time_is_ended_and_the_page_serves_on() {
    let job = JobDir::new(
        r#"
        name = "slow"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "forever"
        task = "bed.spin"
        inputs = { values = [1] }
        max_attempts = 2
        [[stages]]
        name = "good"
        task = "bed.square"
        inputs = { range = { start = 0, end = 30 } }
        replicate = 1.0
        quorum = 2
        [limits]
        fuel = 1_000_000_000_000
        timeout_secs = 1
        "#,
    );
    let options = RunOptions {
        min_workers: 2,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let run = tokio::spawn(finish(server));
    let _native = WorkerProcess::start(&url, "native");
    let (_browser, _page) = open_page(&volunteer_url(&url, "")).await;
    let (summary, lines) = run.await.unwrap();

    let forever = lines.iter().find(|l| l["stage"] == "forever").unwrap();
    assert_eq!(
        forever["error"], "timeout: the task ran past the wall-clock limit of 1s",
        "{forever}"
    );
    assert_eq!(forever["check"], "replicated:2", "{forever}");
    let good: Vec<_> = lines.iter().filter(|l| l["stage"] == "good").collect();
    assert_eq!(good.len(), 30);
    assert!(
        good.iter().all(|l| l["check"] == "replicated:2"),
        "{good:?}"
    );
    assert_eq!(summary.counts.untrusted, 0, "{summary:?}");
}

/// The page keeps its key pair in IndexedDB: reloaded, it joins again as the same identity.
/// Meanwhile it shows the project's description and its job's name, and the operator's API
/// lists it as a browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_page_keeps_its_identity() {
    let job = crate::support::burn_job(100_000, 2_000_000);
    let options = RunOptions {
        description: Some("Burns CPU, for science.".into()),
        admin_tokens: vec!["admin".into()],
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));
    let page_url = volunteer_url(&url, "");
    let (_browser, mut page) = open_page(&page_url).await;
    let (first, identity) = browser_identity(&handle, None).await;
    let shown = page.eval("window.dipla.identity.hex").await.unwrap();
    assert_eq!(shown, identity.as_str());
    let about = "JSON.stringify([document.getElementById('project').textContent, \
        document.getElementById('description').textContent, \
        document.getElementById('job').textContent])";
    eventually_async("the page showing the project and its job", async || {
        let shown = page.eval(about).await.unwrap();
        (shown == r#"["burn","Burns CPU, for science.","burn"]"#).then_some(())
    })
    .await;
    let addr = addr_of(&url);
    let (code, _, body) =
        tokio::task::spawn_blocking(move || http(&addr, "GET", "/api/job", Some("admin")))
            .await
            .unwrap();
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["workers"][0]["agent"], "browser", "{status}");

    page.eval("location.reload()").await.unwrap();
    let (_, again) = browser_identity(&handle, Some(first)).await;
    assert_eq!(again, identity, "a reload keeps the identity");
    run.abort();
}

/// Waits until a browser worker newer than `after` (worker ids only grow) has joined, and
/// returns its id.
async fn browser_after(handle: &dipla_server::Handle, after: u64) -> u64 {
    eventually_async("a browser worker joined again", async || {
        handle
            .workers()
            .into_iter()
            .filter(|worker| worker.agent == "browser" && worker.id > after)
            .map(|worker| worker.id)
            .max()
    })
    .await
}

/// The page keeps its benchmark for the kernels it measured: reloaded, it joins without
/// measuring again; reloaded when the benchmark it kept is for other kernels (a server on the
/// same origin serving other ones, played here by changing the kernels' hash the benchmark
/// was kept under), it measures again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_benchmark_counts_only_for_the_kernels_it_measured() {
    let job = crate::support::burn_job(100_000, 2_000_000);
    let (server, url) = remote_server(job.job()).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));
    let (_browser, mut page) = open_page(&volunteer_url(&url, "")).await;
    let (first, _) = browser_identity(&handle, None).await;
    assert_eq!(page.eval("window.dipla.measured").await.unwrap(), true);
    let kept = page
        .eval("JSON.parse(localStorage.getItem('dipla-benchmark')).kernels")
        .await
        .unwrap();
    assert_eq!(kept.as_str().map(str::len), Some(64), "a sha256: {kept}");

    page.eval("location.reload()").await.unwrap();
    let second = browser_after(&handle, first).await;
    assert_eq!(
        page.eval("window.dipla.measured").await.unwrap(),
        false,
        "the same kernels: the benchmark is remembered"
    );

    page.eval(
        "(() => { \
         const kept = JSON.parse(localStorage.getItem('dipla-benchmark')); \
         kept.kernels = '0'.repeat(64); \
         localStorage.setItem('dipla-benchmark', JSON.stringify(kept)); \
         location.reload(); })()",
    )
    .await
    .unwrap();
    browser_after(&handle, second).await;
    assert_eq!(
        page.eval("window.dipla.measured").await.unwrap(),
        true,
        "other kernels: measured again"
    );
    let kept_now = page
        .eval("JSON.parse(localStorage.getItem('dipla-benchmark')).kernels")
        .await
        .unwrap();
    assert_eq!(kept_now, kept, "kept again under the kernels served");
    run.abort();
}

/// The manifest of a job of a Python guest (a component, which no browser runs).
fn python_job() -> JobDir {
    JobDir::new(&format!(
        r#"
        name = "python"
        [modules]
        shapes = "{}"
        [[stages]]
        name = "squares"
        task = "shapes.square"
        inputs = {{ range = {{ start = 0, end = 3 }} }}
        "#,
        root().join("target/python/shapes.wasm").display()
    ))
}

/// A browser joining a job of a Python guest is refused, naming the module; the page says
/// so and stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_is_refused_a_python_guest_naming_it() {
    let job = python_job();
    let (server, url) = remote_server(job.job()).await;
    let run = tokio::spawn(finish(server));
    let (_browser, mut page) = open_page(&volunteer_url(&url, "")).await;
    let state = eventually_async("the page refused", async || {
        let state = page
            .eval("document.getElementById('state').textContent")
            .await
            .unwrap();
        state
            .as_str()
            .filter(|state| state.starts_with("refused"))
            .map(str::to_owned)
    })
    .await;
    assert_eq!(
        state,
        "refused: module shapes cannot run in a browser: it is a component (a Python guest)"
    );
    run.abort();
}

/// Under `serve`, a browser is seated only in jobs it can run: it finishes the Rust job and
/// then waits, never seated in the Python one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_serve_a_browser_works_only_for_jobs_it_can_run() {
    use crate::serve::{TOKEN, serve, submit};
    let data = tempfile::tempdir().unwrap();
    let (mut server, url) = serve(data.path());
    let python = submit(&url, &python_job());
    let squares = submit(&url, &squares_job(300, ""));
    let (_browser, mut page) = open_page(&format!("{url}/volunteer?start&cores=1")).await;
    let addr = url.trim_start_matches("http://").to_owned();
    let status = move |id: &str| -> serde_json::Value {
        let (code, _, body) = http(&addr, "GET", &format!("/api/jobs/{id}"), Some(TOKEN));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let done = tokio::task::spawn_blocking(move || {
        let mut agents = Vec::new();
        eventually("the Rust job done by the browser", || {
            let python = status(&python);
            assert_eq!(python["workers"], serde_json::json!([]), "{python}");
            let squares = status(&squares);
            for worker in squares["workers"].as_array().into_iter().flatten() {
                agents.push(worker["agent"].clone());
            }
            (squares["state"] == "succeeded").then_some(())
        });
        (agents, status(&python))
    })
    .await
    .unwrap();
    let (agents, python) = done;
    assert!(agents.iter().all(|agent| agent == "browser"), "{agents:?}");
    assert_eq!(python["state"], "running", "{python}");
    eventually_async("the page waiting for a job", async || {
        let job = page
            .eval("document.getElementById('job').textContent")
            .await
            .unwrap();
        (job == "waiting for a job").then_some(())
    })
    .await;
    server.stop();
}

/// A page that lies (its test hook, honoured only by a server run with the hidden
/// `--volunteer-test-hooks`) is caught by replication like any liar: untrusted, and every
/// result is the honest workers'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_page_is_caught() {
    // Long enough that the liar, caught at its first lie, is seen untrusted while connected.
    let job = crate::support::squares_job(3000, "replicate = 1.0\nquorum = 2");
    let options = RunOptions {
        min_workers: 3,
        volunteer_test_hooks: true,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let records = watch(server.handle());
    let run = tokio::spawn(finish(server));
    let _honest = [
        WorkerProcess::start(&url, "one"),
        WorkerProcess::start(&url, "two"),
    ];
    let (_browser, _page) = open_page(&volunteer_url(&url, "&lie")).await;
    let (summary, lines) = run.await.unwrap();

    assert_eq!(summary.counts.untrusted, 1, "{summary:?}");
    assert_eq!(lines.len(), 3000);
    for line in &lines {
        let index = line["index"].as_u64().unwrap();
        assert_eq!(line["output"], index * index, "{line}");
        assert_eq!(line["check"], "replicated:2", "{line}");
    }
    let records = records.await.unwrap();
    for (name, record) in &records {
        let browser = name.starts_with("browser-");
        assert_eq!(record.trusted, !browser, "{name}: {records:#?}");
    }
}

/// A page on a server without test hooks ignores `?lie`: it stays honest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lying_hook_needs_the_servers_test_flag() {
    let job = crate::support::squares_job(30, "replicate = 1.0\nquorum = 2");
    let options = RunOptions {
        min_workers: 2,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let run = tokio::spawn(finish(server));
    let _native = WorkerProcess::start(&url, "native");
    let (_browser, _page) = open_page(&volunteer_url(&url, "&lie")).await;
    let (summary, lines) = run.await.unwrap();
    assert_eq!(summary.counts.untrusted, 0, "{summary:?}");
    assert!(lines.iter().all(|line| line["check"] == "replicated:2"));
}

/// A stage that meets its goal early (`Flow::Stop`): the page reports the stopping outputs,
/// drops the tasks the server cancels and sends nothing for them, on one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_stopped_early_cancels_the_pages_tasks() {
    let job = JobDir::new(
        r#"
        name = "search"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "search"
        task = "bed.seek"
        inputs = { range = { start = 0, end = 1000000 } }
        stop_after = 2
        [[stages]]
        name = "after"
        task = "bed.square"
        inputs = { range = { start = 0, end = 10 } }
        "#,
    );
    let (server, url) = remote_server_with(job.job(), RunOptions::default()).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));
    let (_browser, _page) = open_page(&volunteer_url(&url, "&cores=2")).await;
    let connections = tokio::task::spawn_blocking(move || {
        let mut seen = std::collections::BTreeSet::new();
        eventually("the job's workers gone", || {
            seen.extend(handle.workers().into_iter().map(|worker| worker.id));
            (!seen.is_empty() && handle.connected() == 0).then_some(())
        });
        seen
    });
    let (summary, lines) = run.await.unwrap();
    assert!(summary.success(), "{summary:?}");
    let found: Vec<u64> = lines
        .iter()
        .filter(|l| l["stage"] == "search")
        .filter_map(|l| l["output"].as_u64())
        .filter(|x| x % 1000 == 777)
        .collect();
    assert!(found.len() >= 2, "{found:?}");
    assert!(summary.counts.stopped >= 1_000_000 - 20_000, "{summary:?}");
    assert_eq!(lines.iter().filter(|l| l["stage"] == "after").count(), 10);
    assert_eq!(
        connections.await.unwrap().len(),
        1,
        "one connection throughout"
    );
}

/// A TCP proxy to `target` whose connections open so far can be frozen: they stay open and
/// carry nothing more, as a server that hangs (or a network that drops everything) looks to
/// its peers. Connections opened after a freeze are carried as usual.
struct FreezingProxy {
    addr: std::net::SocketAddr,
    freeze: tokio::sync::watch::Sender<u64>,
}

impl FreezingProxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (freeze, frozen) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut frozen = frozen.clone();
                let born = *frozen.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let carry = async {
                        tokio::select! {
                            _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
                            _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
                        }
                    };
                    let frozen = async move {
                        let _ = frozen.wait_for(|generation| *generation > born).await;
                    };
                    tokio::select! {
                        () = carry => {}
                        () = frozen => {
                            // Frozen: hold both sockets open, carry nothing, forever.
                            std::future::pending::<()>().await;
                        }
                    }
                });
            }
        });
        Self { addr, freeze }
    }

    /// Freezes every connection open now.
    fn freeze(&self) {
        self.freeze.send_modify(|generation| *generation += 1);
    }
}

/// A page whose server goes silent (its connection frozen, never closed) takes it for dead
/// after three heartbeats, as a native worker does, and joins again; the job finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_takes_a_silent_server_for_dead_and_joins_again() {
    let job = crate::support::burn_job(2_000, 2_000_000);
    let options = RunOptions {
        heartbeat: std::time::Duration::from_millis(200),
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));
    let proxy = FreezingProxy::start(addr_of(&url).parse().unwrap()).await;
    let proxied = url.replace(&addr_of(&url), &proxy.addr.to_string());
    let (_browser, mut page) = open_page(&volunteer_url(&proxied, "")).await;
    let (first, identity) = browser_identity(&handle, None).await;
    eventually_async("the page hearing the server's heartbeats", async || {
        (page.eval("window.dipla.heartbeats").await.unwrap().as_u64() > Some(0)).then_some(())
    })
    .await;
    proxy.freeze();
    let (_, again) = browser_identity(&handle, Some(first)).await;
    assert_eq!(again, identity, "the same page joined again");
    let (summary, lines) = run.await.unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 2_000);
}
