//! What Dipla's benchmark binaries share (`dipla-bench` in `main.rs`, `scale` in
//! `bin/scale.rs`), and the tools they share with the integration tests: a hostile worker and
//! a browser.
//!
//! Layout: [`machine`] describes the host; [`attacker`] is a raw worker client written from
//! the protocol documentation; [`attacks`] plays attacks with it (the hostile-protocol tests
//! and the `wipeout` benchmark run the same ones); [`browser`] drives headless Chromium (the
//! tests of the dashboard and of browser volunteers, and the `browser` benchmark).

pub mod attacker;
pub mod attacks;
pub mod browser;

/// The machine the figures come from: CPU model, cores, memory, OS and architecture.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let kib: u64 = info
                .lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!(", {} GiB", (kib + (1 << 19)) >> 20))
        })
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores{memory}, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}
