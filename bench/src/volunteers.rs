//! The volunteer page (`/volunteer`, issue 20) against `dipla-worker`, side by side in one
//! run (`--only browser`, and a table of its own after the main one when Chromium is
//! installed): what a browser gives per core, and what the page costs its volunteer.
//!
//! - **Throughput per core**: the same job (factorise, pi: the tasks of `examples/`; tiny
//!   tasks) served by `dipla-server run` to one `dipla-worker --cores 1`, then to one page in
//!   headless Chromium with one core, alternately within each run; tiny tasks also on all the
//!   machine's cores (one worker, one page). A job's rate is its tasks after the first over
//!   the server's time from the first result to the last: the joining, the page's
//!   benchmark, the module's compilation (and its instrumentation) are left out, as they are
//!   paid once per volunteer, not per task.
//! - **The page's own cost**: from opening the page (its navigation, in a running browser)
//!   to its first result, on a first visit (the benchmark included) and reloaded (the
//!   benchmark remembered); and its memory, as the proportional set size (PSS) of the
//!   browser's processes: showing `about:blank`, showing the page before it starts (idle),
//!   and the peak while it works. A page's script and its Web Workers run in a renderer
//!   process, so the renderers' PSS is the page's (plus Chromium's spare renderer); the
//!   whole browser's PSS over its `about:blank` figure is what opening the page added.
//!   (`performance.measureUserAgentSpecificMemory()` would need the page served
//!   cross-origin isolated, which it is not.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use dipla_bench::browser::{Browser, PATIENCE, Page, ProcessMemory};

use crate::median;
use crate::rig::{Rig, Run};
use crate::workloads::{RUST_GUESTS, Workload, one_stage, thousands};

/// Between two readings of the browser's memory while it works.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Tiny tasks in the job the page's cost is measured on: more than the page does in that
/// time, so the job is still running when the page is reloaded (the server is then killed).
const LONG_JOB_TASKS: u64 = 1_000_000;

/// One figure over the runs.
#[derive(Debug, Clone, Default)]
pub struct Series(Vec<f64>);

impl Series {
    fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    /// The median (the upper one of an even count).
    pub fn median(&self) -> f64 {
        median(self.0.clone())
    }

    /// The smallest and the largest.
    pub fn range(&self) -> (f64, f64) {
        let min = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    }
}

/// Tasks per second of one workload, natively and in the browser.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// `dipla-worker`.
    pub native: Series,
    /// The page.
    pub browser: Series,
    /// The browser's time per task over the native one's, run by run.
    pub ratio: Series,
}

impl Side {
    fn add(&mut self, native: f64, browser: f64) {
        self.native.push(native);
        self.browser.push(browser);
        self.ratio.push(native / browser);
    }
}

/// Memory, bytes (PSS).
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// The whole browser, all its processes.
    pub browser: Series,
    /// Its renderers (where pages and their Web Workers run).
    pub renderers: Series,
}

impl Memory {
    fn add(&mut self, reading: Reading) {
        self.browser.push(reading.browser as f64);
        self.renderers.push(reading.renderers as f64);
    }
}

/// The figures of `--only browser`.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// `chromium --version`.
    pub chromium: String,
    /// The machine's cores, the page's "all".
    pub cores: usize,
    /// Runs.
    pub runs: usize,
    /// Factorise, one core each.
    pub factorise: Side,
    /// Pi, one core each.
    pub pi: Side,
    /// Tiny tasks, one core each.
    pub tiny_one: Side,
    /// Tiny tasks, every core (one worker, one page).
    pub tiny_all: Side,
    /// From opening the page to its first result, first visit, ms.
    pub first_visit: Series,
    /// Of which the benchmark (to its end from the page's opening), ms.
    pub benchmarked: Series,
    /// The same reloaded, the benchmark remembered, ms.
    pub reload: Series,
    /// The browser showing `about:blank`.
    pub blank: Memory,
    /// Showing the page, not started.
    pub idle: Memory,
    /// The peak while the page works, over every job of the run.
    pub working: Memory,
}

/// Measures everything, `runs` times, native and browser alternately.
pub fn measure(rig: &Rig, target: &std::path::Path, runs: usize) -> Result<Figures> {
    ensure!(
        Browser::available(),
        "Chromium is not installed (apt-get install chromium)"
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut figures = Figures {
        chromium: chromium_version(),
        cores,
        runs,
        ..Figures::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    for run in 1..=runs {
        let mut working = Reading::default();
        for (workload, side, cores) in [
            (Workload::Factorise, &mut figures.factorise, 1),
            (Workload::Pi, &mut figures.pi, 1),
            (Workload::Tiny, &mut figures.tiny_one, 1),
            (Workload::Tiny, &mut figures.tiny_all, cores),
        ] {
            let (manifest, _) = workload.manifest(target);
            let native = {
                let mut serving = rig.start(&manifest, 1, &[])?;
                serving.add_workers(1, cores)?;
                checked(workload, serving.finish()?)?
            };
            let (browser, peak) = in_browser(rig, &manifest, cores)?;
            let browser = checked(workload, browser)?;
            working = working.max(peak);
            let (native, browser) = (rate(&native), rate(&browser));
            eprintln!(
                "browser run {run}: {} on {cores} core(s): native {native:.0} tasks/s, \
                 browser {browser:.0} tasks/s ({:.2}x the time)",
                workload.name(),
                native / browser
            );
            side.add(native, browser);
        }
        let cost = runtime.block_on(page_cost(rig, target))?;
        eprintln!("browser run {run}: the page's cost: {cost:?}");
        figures.first_visit.push(cost.first_visit);
        figures.benchmarked.push(cost.benchmarked);
        figures.reload.push(cost.reload);
        figures.blank.add(cost.blank);
        figures.idle.add(cost.idle);
        figures.working.add(working.max(cost.working));
    }
    Ok(figures)
}

/// Checks a run's answer against the workload's pinned value.
fn checked(workload: Workload, run: Run) -> Result<Run> {
    let check = workload.check(&run.results)?;
    ensure!(
        check == workload.expected(),
        "{}: check value {check}, expected {}",
        workload.name(),
        workload.expected()
    );
    Ok(run)
}

/// Tasks per second from the first result to the last.
fn rate(run: &Run) -> f64 {
    let summary = &run.summary;
    let first = summary.first_result_secs.unwrap_or(0.0);
    (summary.tasks.saturating_sub(1)) as f64 / (summary.elapsed_secs - first).max(1e-6)
}

/// The volunteer page of the server whose workers connect to `url`, with `query`.
fn page_url(url: &str, query: &str) -> String {
    let http = url.replace("ws://", "http://").replace("/ws", "");
    format!("{http}/volunteer?{query}")
}

/// Runs `manifest` on one page in a fresh Chromium with `cores` cores; the run, and the
/// browser's peak memory meanwhile.
fn in_browser(rig: &Rig, manifest: &str, cores: usize) -> Result<(Run, Reading)> {
    let serving = rig.start(manifest, 1, &[])?;
    let browser = Browser::open(&page_url(serving.url(), &format!("start&cores={cores}")))?;
    let sampler = Sampler::start(browser.pid());
    let run = serving.finish();
    let peak = sampler.stop();
    drop(browser);
    Ok((run?, peak))
}

/// The browser's memory at one moment: its processes' PSS added up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// Every process.
    pub browser: u64,
    /// The renderers.
    pub renderers: u64,
}

impl Reading {
    fn of(processes: &[ProcessMemory]) -> Self {
        Self {
            browser: processes.iter().map(|p| p.pss).sum(),
            renderers: processes
                .iter()
                .filter(|p| p.kind == "renderer")
                .map(|p| p.pss)
                .sum(),
        }
    }

    fn now(pid: u32) -> Self {
        dipla_bench::browser::memory_of(pid)
            .map(|processes| Self::of(&processes))
            .unwrap_or_default()
    }

    fn max(self, other: Self) -> Self {
        Self {
            browser: self.browser.max(other.browser),
            renderers: self.renderers.max(other.renderers),
        }
    }
}

/// Reads a browser's memory every [`SAMPLE_EVERY`] on a thread of its own, keeping the peak.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Reading>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = Reading::default();
            while !stopped.load(Ordering::Relaxed) {
                peak = peak.max(Reading::now(pid));
                std::thread::sleep(SAMPLE_EVERY);
            }
            peak
        });
        Self { stop, thread }
    }

    fn stop(self) -> Reading {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// What opening the page costs, in one browser.
#[derive(Debug, Clone, Copy)]
struct PageCost {
    /// From navigating to the page (`?start`) to its first result, ms.
    first_visit: f64,
    /// From the same navigation to the benchmark's end, ms.
    benchmarked: f64,
    /// Reloaded, to its first result, ms.
    reload: f64,
    blank: Reading,
    idle: Reading,
    working: Reading,
}

/// In one browser, on a long job of tiny tasks: `about:blank`, then the page not started,
/// then started (a first visit: no benchmark kept), then reloaded; the server is then
/// killed.
async fn page_cost(rig: &Rig, target: &std::path::Path) -> Result<PageCost> {
    let manifest = one_stage(
        &target.join(RUST_GUESTS).join("testbed.wasm"),
        "square",
        0..LONG_JOB_TASKS,
    );
    let serving = rig.start(&manifest, 1, &[])?;
    let browser = Browser::open("about:blank")?;
    let mut page = browser.page("about:blank").await?;
    let pid = browser.pid();
    let blank = settled(pid).await;

    let idle_url = page_url(serving.url(), "cores=1");
    page.eval(&format!("location.href = {idle_url:?}")).await?;
    until(
        &mut page,
        "the page loaded",
        "window.dipla && window.dipla.about ? true : null",
    )
    .await?;
    let idle = settled(pid).await;

    let first = visit(
        &mut page,
        &format!(
            "location.href = {:?}",
            page_url(serving.url(), "start&cores=1")
        ),
    )
    .await?;
    let sampler = Sampler::start(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let working = sampler.stop();
    let reload = visit(&mut page, "location.reload()").await?;
    ensure!(
        reload.benchmarked < first.benchmarked,
        "the reloaded page benchmarked itself again: {reload:?} after {first:?}"
    );
    drop(serving);
    Ok(PageCost {
        first_visit: first.first,
        benchmarked: first.benchmarked,
        reload: reload.first,
        blank,
        idle,
        working,
    })
}

/// The page's own clock (`window.dipla.timing`): ms from its navigation.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
struct Timing {
    benchmarked: f64,
    first: f64,
}

/// Runs `navigate` (which loads a page that starts at once) and waits for the new
/// document's first result; its timing.
async fn visit(page: &mut Page, navigate: &str) -> Result<Timing> {
    let before = page.eval("performance.timeOrigin").await?;
    let before = before.as_f64().context("no performance.timeOrigin")?;
    page.eval(navigate).await?;
    let timing = until(
        page,
        "the page's first result",
        &format!(
            "performance.timeOrigin !== {before:?} && window.dipla && window.dipla.timing.first \
             ? JSON.stringify(window.dipla.timing) : null"
        ),
    )
    .await?;
    Ok(serde_json::from_str(timing.as_str().context("timing")?)?)
}

/// Evaluates `probe` in the page until it gives something other than `null`.
async fn until(page: &mut Page, what: &str, probe: &str) -> Result<serde_json::Value> {
    let started = std::time::Instant::now();
    loop {
        let value = page.eval(probe).await?;
        if !value.is_null() {
            return Ok(value);
        }
        if started.elapsed() > PATIENCE {
            bail!("never saw {what} (waited {PATIENCE:?})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The browser's memory once it has settled: the median of five readings over a second,
/// after a second's wait (a page's memory moves for a moment after it loads).
async fn settled(pid: u32) -> Reading {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut readings = Vec::new();
    for _ in 0..5 {
        readings.push(Reading::now(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    readings.sort_by_key(|reading| reading.browser);
    readings[2]
}

/// `chromium --version`, or "Chromium".
fn chromium_version() -> String {
    std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|version| !version.is_empty())
        .unwrap_or_else(|| "Chromium".into())
}

/// `median unit (min-max)` of a series, each value shown by `show`.
fn spread(series: &Series, show: impl Fn(f64) -> String, unit: &str) -> String {
    let (min, max) = series.range();
    if series.0.len() < 2 {
        return format!("{}{unit}", show(series.median()));
    }
    format!(
        "{}{unit} ({}-{})",
        show(series.median()),
        show(min),
        show(max)
    )
}

impl Figures {
    /// The table.
    pub fn table(&self) -> String {
        let rate = |x: f64| thousands(x.round() as u64);
        let times = |x: f64| format!("{x:.2}");
        let whole = |x: f64| thousands(x.round() as u64);
        let mb = |x: f64| format!("{:.0}", x / 1e6);
        let mut out = format!(
            "Browser volunteers: one page in headless {} against one `dipla-worker`, side by \
             side (median (min-max) of {} runs; tasks/s from the first result to the last)\n\n\
             | benchmark | native worker, tasks/s | browser page, tasks/s | browser time / native |\n\
             |---|---|---|---|\n",
            self.chromium, self.runs
        );
        for (title, side, goal) in [
            (
                format!("{}, 1 core", Workload::Factorise.title()),
                &self.factorise,
                "; goal: within 1.5x",
            ),
            (
                format!("{}, 1 core", Workload::Pi.title()),
                &self.pi,
                "; goal: within 2x",
            ),
            (
                format!("{}, 1 core", Workload::Tiny.title()),
                &self.tiny_one,
                "",
            ),
            (
                format!(
                    "{}, all {} cores (one worker / one page)",
                    Workload::Tiny.title(),
                    self.cores
                ),
                &self.tiny_all,
                "",
            ),
        ] {
            out += &format!(
                "| {title} | {} | {} | {}{goal} |\n",
                spread(&side.native, rate, ""),
                spread(&side.browser, rate, ""),
                spread(&side.ratio, times, "x")
            );
        }
        out += &format!(
            "| from opening the page to its first result | first visit {} ({} of it to the \
             benchmark's end); reloaded, the benchmark kept: {} | | |\n",
            spread(&self.first_visit, whole, " ms"),
            spread(&self.benchmarked, whole, " ms"),
            spread(&self.reload, whole, " ms")
        );
        let over = |memory: &Memory| {
            let blank = self.blank.browser.median();
            format!(
                "renderers {}, whole browser +{} MB",
                spread(&memory.renderers, mb, " MB"),
                mb(memory.browser.median() - blank)
            )
        };
        out += &format!(
            "| memory (PSS) | `about:blank`: renderers {}, whole browser {}; the page idle: {}; \
             working (peak): {} | | |\n",
            spread(&self.blank.renderers, mb, " MB"),
            spread(&self.blank.browser, mb, " MB"),
            over(&self.idle),
            over(&self.working)
        );
        out
    }
}
