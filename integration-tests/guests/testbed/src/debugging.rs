//! Tasks for debugging a guest: ones that log (`log!`, and std's `println!`/`eprintln!`
//! shadowed by the SDK's), and one that asks for the time it has no clock for.

use dipla_guest::{eprintln, log, println, task};

/// Logs its steps, then halves an even number and fails on an odd one.
#[task]
pub fn chatty(x: u64) -> Result<u64, String> {
    log!("checking {x}");
    println!("println goes to the log");
    eprintln!("so does eprintln");
    if x % 2 == 1 {
        return Err(format!("{x} is odd"));
    }
    Ok(x / 2)
}

/// Logs, then panics.
#[task]
pub fn chatty_panic(x: u64) -> u64 {
    log!("about to panic on {x}");
    panic!("boom on {x}")
}

/// Logs `lines` lines, far more than a task keeps for a large `lines`.
#[task]
pub fn log_flood(lines: u64) -> u64 {
    for i in 0..lines {
        log!("line {i} of {lines}");
    }
    lines
}

/// Reads the clock: `"instant"` (`Instant::now`) or `"system"` (`SystemTime::now`).
#[task]
pub fn clock(kind: String) -> u64 {
    log!("reading the {kind} clock");
    match kind.as_str() {
        "instant" => std::time::Instant::now().elapsed().as_nanos() as u64,
        _ => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
    }
}
