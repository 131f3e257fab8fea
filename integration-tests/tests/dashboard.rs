//! The live dashboard in a real browser: headless Chromium, driven over the DevTools
//! protocol, watches a job's counters and worker list change as tasks complete.

use crate::support::{
    Browser, WorkerProcess, addr_of, burn_job, eventually_async, finish, http, remote_server,
};

/// `/metrics` mid-job, in Prometheus's text format.
async fn check_metrics(addr: &str) {
    let addr = addr.to_owned();
    let (code, head, body) =
        tokio::task::spawn_blocking(move || http(&addr, "GET", "/metrics", None))
            .await
            .unwrap();
    assert_eq!(code, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let value = |name: &str| -> f64 {
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    // Each job's series carry its name.
    assert!(
        value("dipla_tasks{job=\"burn\",state=\"done\"}") > 0.0,
        "{body}"
    );
    assert!(value("dipla_task_latency_seconds_count") > 0.0, "{body}");
    assert_eq!(value("dipla_workers_connected"), 1.0, "{body}");
    assert_eq!(value("dipla_job_workers{job=\"burn\"}"), 1.0, "{body}");
    assert_eq!(
        value("dipla_module_transfers_total{job=\"burn\"}"),
        1.0,
        "{body}"
    );
    assert!(
        body.contains("dipla_checks_total{job=\"burn\",outcome=\"unchecked\"}"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_metrics_show_counters_and_workers_changing_as_tasks_complete() {
    let job = burn_job(600, 3_000_000);
    let (server, url) = remote_server(job.job()).await;
    let page_url = format!("http://{}/", addr_of(&url));
    let run = tokio::spawn(finish(server));
    let browser = Browser::open(&page_url).unwrap();
    let mut page = browser.page(&page_url).await.unwrap();

    let snapshot = "JSON.stringify({ done: document.getElementById('done').textContent, \
        tasks: document.getElementById('tasks').textContent, \
        state: document.getElementById('state').textContent, \
        workers: [...document.querySelectorAll('.worker-name')].map(e => e.textContent), \
        agents: [...document.querySelectorAll('.worker-agent')].map(e => e.textContent), \
        stage_done: [...document.querySelectorAll('.stage-done')].map(e => e.textContent) })";
    // The job starts once the page shows: it cannot end before the page could watch it.
    eventually_async("the page loaded", async || {
        page.eval(snapshot).await.unwrap().is_string().then_some(())
    })
    .await;
    let _worker = WorkerProcess::start(&url, "steady");
    let mut seen: Vec<u64> = Vec::new();
    eventually_async("the dashboard showing the job done", async || {
        let value = page.eval(snapshot).await.unwrap();
        let shown: serde_json::Value = serde_json::from_str(value.as_str()?).unwrap();
        let done: u64 = shown["done"]
            .as_str()
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap();
        if shown["state"] == "running" && done > 0 {
            assert_eq!(shown["tasks"], "600", "{shown}");
            assert_eq!(shown["workers"], serde_json::json!(["steady"]), "{shown}");
            assert_eq!(shown["agents"], serde_json::json!(["native"]), "{shown}");
            assert_eq!(shown["stage_done"][0], shown["done"], "{shown}");
            if seen.last() != Some(&done) {
                seen.push(done);
                if seen.len() == 2 {
                    check_metrics(&addr_of(&url)).await;
                }
            }
        }
        (shown["state"] == "done").then(|| assert_eq!(shown["done"], "600", "{shown}"))
    })
    .await;
    assert!(
        seen.len() >= 3 && seen.windows(2).all(|w| w[0] < w[1]),
        "the counter should rise as tasks complete: {seen:?}"
    );
    let (summary, _) = run.await.unwrap();
    assert!(summary.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_of_a_serving_server_lists_its_jobs_and_follows_the_chosen_one() {
    use crate::serve::{serve, submit};
    let data = tempfile::tempdir().unwrap();
    let (mut server, url) = serve(data.path());
    let ws = format!("ws://{}/ws", url.trim_start_matches("http://"));
    let small = submit(&url, &crate::support::squares_job(20, ""));
    let big = submit(&url, &burn_job(600, 3_000_000));
    let page_url = format!("{url}/?job={big}");
    let browser = Browser::open(&page_url).unwrap();
    let mut page = browser.page(&page_url).await.unwrap();

    let snapshot = "JSON.stringify({ done: document.getElementById('done').textContent, \
        jobs: [...document.querySelectorAll('#job-list a')].map(e => e.textContent), \
        current: document.querySelector('#job-list a[aria-current]')?.textContent, \
        workers: [...document.querySelectorAll('.worker-name')].map(e => e.textContent) })";
    let listed = |value: &serde_json::Value| {
        let shown: serde_json::Value = serde_json::from_str(value.as_str()?).unwrap();
        (shown["jobs"].as_array().unwrap().len() >= 2).then_some(shown)
    };
    // The worker starts once the page lists both jobs: they cannot end before the page
    // could watch them. (It takes the older, small job first.)
    eventually_async("the page listing both jobs", async || {
        listed(&page.eval(snapshot).await.unwrap()).map(drop)
    })
    .await;
    let _worker = WorkerProcess::start(&ws, "steady");
    let mut seen: Vec<u64> = Vec::new();
    eventually_async("the chosen job's counter rising", async || {
        let shown = listed(&page.eval(snapshot).await.unwrap())?;
        let jobs = shown["jobs"].as_array().unwrap();
        assert!(jobs[0].as_str().unwrap().contains(&small), "{shown}");
        assert!(jobs[1].as_str().unwrap().contains(&big), "{shown}");
        assert!(shown["current"].as_str().unwrap().contains(&big), "{shown}");
        let done: u64 = shown["done"]
            .as_str()
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap();
        if done > 0 && seen.last() != Some(&done) {
            assert_eq!(shown["workers"], serde_json::json!(["steady"]), "{shown}");
            seen.push(done);
        }
        (seen.len() >= 3).then_some(())
    })
    .await;
    // `/metrics` has a series per job, by id.
    let addr = url.trim_start_matches("http://").to_owned();
    let (_, _, body) = tokio::task::spawn_blocking(move || http(&addr, "GET", "/metrics", None))
        .await
        .unwrap();
    assert!(
        body.contains(&format!("dipla_tasks{{job=\"{small}\",state=\"done\"}} 20")),
        "{body}"
    );
    assert!(
        body.contains(&format!("dipla_job_workers{{job=\"{big}\"}} 1")),
        "{body}"
    );
    server.stop();
}
