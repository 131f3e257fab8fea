//! What a task logs: [`log!`](crate::log), and [`println!`](crate::println),
//! [`eprintln!`](crate::eprintln), [`print!`](crate::print) and [`eprint!`](crate::eprint),
//! which shadow std's when imported (`use dipla_guest::println;`).
//!
//! On `wasm32-unknown-unknown` std's standard output and error go nowhere, so a guest writes
//! into one bounded buffer of [`LOG_BYTES`] per task instead. The host reads it through the
//! optional `dipla_log` export after the task returns or traps, and the log comes back with
//! the result or the failure: `dipla-server try` prints it, a failure's result line carries
//! it as `"log"`, and `dipla-server run --log-tasks` shows every task's. A log never changes
//! a task's output: it is the worker's report, not part of the result. Past [`LOG_BYTES`]
//! the log keeps its beginning and ends with [`TRUNCATED`].
//!
//! Natively (`cargo test`) the macros write to the process's stdout or stderr, as std's do,
//! so unit tests show what a task logs.

use std::fmt;

/// The most a task logs, in bytes, the marker of a cut included (the host's limit too).
pub const LOG_BYTES: usize = 8192;

/// What ends a log that outgrew [`LOG_BYTES`].
pub const TRUNCATED: &str = "\n… (log truncated: a task keeps the first 8 KiB it logs)\n";

/// A log buffer of `N` bytes: keeps what is written until it is full, then ends with
/// [`TRUNCATED`] and ignores the rest.
#[derive(Debug)]
pub struct Buffer<const N: usize> {
    bytes: [u8; N],
    len: usize,
    full: bool,
}

impl<const N: usize> Buffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
            full: false,
        }
    }

    /// What was logged.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Appends `text`, or as much of it as fits (cut at a character boundary) and the marker.
    pub fn push(&mut self, text: &str) {
        if self.full {
            return;
        }
        let room = N.saturating_sub(TRUNCATED.len()).saturating_sub(self.len);
        if text.len() <= room {
            self.append(text.as_bytes());
            return;
        }
        let mut end = room;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.append(&text.as_bytes()[..end]);
        let marker = TRUNCATED.as_bytes();
        self.append(&marker[..marker.len().min(N - self.len)]);
        self.full = true;
    }

    fn append(&mut self, bytes: &[u8]) {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

impl<const N: usize> Default for Buffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for Buffer<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push(text);
        Ok(())
    }
}

/// Where a print goes natively: the process's stdout or stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `print!`, `println!`.
    Stdout,
    /// `eprint!`, `eprintln!`, `log!`.
    Stderr,
}

/// Writes `args` (and a line break if `newline`) to the task's log; natively, to `stream`.
pub fn write(args: fmt::Arguments<'_>, newline: bool, stream: Stream) {
    #[cfg(target_arch = "wasm32")]
    {
        let _ = stream;
        wasm::write(args, newline);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::io::Write;
        let end = if newline { "\n" } else { "" };
        // As std's macros do, except that a closed stream is not a panic.
        let _ = match stream {
            Stream::Stdout => write!(std::io::stdout(), "{args}{end}"),
            Stream::Stderr => write!(std::io::stderr(), "{args}{end}"),
        };
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::cell::UnsafeCell;
    use std::fmt::{self, Write};

    use super::{Buffer, LOG_BYTES};

    /// The task's log. No lock: a trap in the middle of a write must not keep the host from
    /// reading it.
    struct Log(UnsafeCell<Buffer<LOG_BYTES>>);

    // SAFETY: wasm32-unknown-unknown without the `atomics` feature has one thread, and the
    // host calls `dipla_log` only once the task has returned or trapped.
    unsafe impl Sync for Log {}

    static LOG: Log = Log(UnsafeCell::new(Buffer::new()));

    pub(super) fn write(args: fmt::Arguments<'_>, newline: bool) {
        // SAFETY: one thread, and no reference to the buffer outlives this call (formatting
        // `args` cannot reach `LOG`: it is private to this module).
        let log = unsafe { &mut *LOG.0.get() };
        let _ = log.write_fmt(args);
        if newline {
            log.push("\n");
        }
    }

    /// What the task logged as `(ptr << 32) | len`, or 0 when nothing.
    #[unsafe(no_mangle)]
    pub extern "C" fn dipla_log() -> u64 {
        // SAFETY: called by the host after the task, never during a write.
        let bytes = unsafe { &*LOG.0.get() }.bytes();
        if bytes.is_empty() {
            0
        } else {
            ((bytes.as_ptr() as usize as u64) << 32) | bytes.len() as u64
        }
    }
}

/// Writes a line to the task's log: `format!` syntax, a line break added. Natively it goes
/// to stderr.
///
/// ```
/// dipla_guest::log!("trying {} of {}", 3, 10);
/// ```
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::log::write(
            ::core::format_args!($($arg)*),
            true,
            $crate::log::Stream::Stderr,
        )
    };
}

/// Std's `println!`, writing to the task's log in a guest: bring it in with
/// `use dipla_guest::println;`.
///
/// ```
/// use dipla_guest::println;
/// println!("x = {}", 7);
/// ```
#[macro_export]
macro_rules! println {
    () => {
        $crate::log::write(::core::format_args!(""), true, $crate::log::Stream::Stdout)
    };
    ($($arg:tt)*) => {
        $crate::log::write(::core::format_args!($($arg)*), true, $crate::log::Stream::Stdout)
    };
}

/// Std's `print!`, writing to the task's log in a guest: `use dipla_guest::print;`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::log::write(::core::format_args!($($arg)*), false, $crate::log::Stream::Stdout)
    };
}

/// Std's `eprintln!`, writing to the task's log in a guest: `use dipla_guest::eprintln;`.
#[macro_export]
macro_rules! eprintln {
    () => {
        $crate::log::write(::core::format_args!(""), true, $crate::log::Stream::Stderr)
    };
    ($($arg:tt)*) => {
        $crate::log::write(::core::format_args!($($arg)*), true, $crate::log::Stream::Stderr)
    };
}

/// Std's `eprint!`, writing to the task's log in a guest: `use dipla_guest::eprint;`.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::log::write(::core::format_args!($($arg)*), false, $crate::log::Stream::Stderr)
    };
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::*;

    fn text<const N: usize>(buffer: &Buffer<N>) -> &str {
        std::str::from_utf8(buffer.bytes()).unwrap()
    }

    #[test]
    fn writes_are_kept_in_order() {
        let mut log = Buffer::<LOG_BYTES>::new();
        assert_eq!(text(&log), "");
        write!(log, "a{}", 1).unwrap();
        log.push("\nb\n");
        assert_eq!(text(&log), "a1\nb\n");
    }

    #[test]
    fn a_full_log_keeps_its_beginning_and_says_it_was_cut() {
        let mut log = Buffer::<LOG_BYTES>::new();
        for i in 0..10_000 {
            writeln!(log, "line {i}").unwrap();
        }
        let text = text(&log);
        assert!(text.len() <= LOG_BYTES);
        assert!(text.starts_with("line 0\nline 1\n"));
        assert!(text.ends_with(TRUNCATED), "{}", &text[text.len() - 100..]);
        let before = text.len();
        log.push("more");
        assert_eq!(log.bytes().len(), before, "nothing is added once cut");
    }

    #[test]
    fn a_cut_falls_on_a_character_boundary() {
        let mut log = Buffer::<{ 64 + TRUNCATED.len() }>::new();
        log.push(&"é".repeat(40));
        let text = text(&log);
        assert_eq!(text, format!("{}{TRUNCATED}", "é".repeat(32)));
        let mut tiny = Buffer::<3>::new();
        tiny.push("hello");
        assert_eq!(tiny.bytes(), &TRUNCATED.as_bytes()[..3]);
    }

    #[test]
    fn the_macros_accept_std_s_syntax_natively() {
        let x = 5;
        crate::log!("x = {x}, {}", x + 1);
        crate::println!();
        crate::println!("{x:>4}");
        crate::print!("no newline ");
        crate::eprintln!("to stderr");
        crate::eprint!("");
    }
}
