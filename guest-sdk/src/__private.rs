//! Runtime support for the code `#[task]` generates. Not a public API: it may change in any
//! release.

use std::fmt::Display;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Status byte of an output: the rest is the JSON of the task's return value.
pub const STATUS_OK: u8 = 0;
/// Status byte of an output: the rest is a UTF-8 error message.
pub const STATUS_ERR: u8 = 1;
/// Status byte of an output: the rest is the JSON of the task's return value, which meets
/// the stage's goal (stop the stage).
pub const STATUS_STOP: u8 = 2;

/// The encoded output of a successful task.
pub fn success<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = vec![STATUS_OK];
    match serde_json::to_writer(&mut out, value) {
        Ok(()) => out,
        Err(error) => failure(format_args!(
            "the task's result cannot be encoded as JSON: {error}"
        )),
    }
}

/// The encoded output of a failed task.
pub fn failure(message: impl Display) -> Vec<u8> {
    let mut out = vec![STATUS_ERR];
    out.extend_from_slice(message.to_string().as_bytes());
    out
}

/// Decodes a task's input; on failure, returns the encoded failure output.
///
/// # Errors
/// When `input` is not the JSON of a `T`.
pub fn decode<T: DeserializeOwned>(input: &[u8]) -> Result<T, Vec<u8>> {
    serde_json::from_slice(input).map_err(|error| {
        failure(format_args!(
            "the input does not match the task's parameters: {error}"
        ))
    })
}

/// Compile-time check that a task parameter's type can be decoded from JSON.
pub fn assert_input<T: DeserializeOwned>() {}

/// A task's return value, waiting to be encoded; see [`EncodeResult`] and [`EncodeValue`].
pub struct Returned<T>(pub T);

/// Encodes a returned `Result<T, E>`: `Ok` as the output, `Err` as a failure.
///
/// Chosen before [`EncodeValue`] by method resolution (autoref specialisation), because it
/// matches `Returned<_>` without an extra reference.
pub trait EncodeResult {
    /// The encoded output.
    fn encode(&self) -> Vec<u8>;
}

impl<T: Serialize, E: Display> EncodeResult for Returned<Result<T, E>> {
    fn encode(&self) -> Vec<u8> {
        match &self.0 {
            Ok(value) => success(value),
            Err(error) => failure(error),
        }
    }
}

/// Encodes a returned `Flow<T>`: `Continue` as the output, `Stop` as an output that stops
/// the stage.
pub trait EncodeFlow {
    /// The encoded output.
    fn encode(&self) -> Vec<u8>;
}

impl<T: Serialize> EncodeFlow for Returned<crate::Flow<T>> {
    fn encode(&self) -> Vec<u8> {
        match &self.0 {
            crate::Flow::Continue(value) => success(value),
            crate::Flow::Stop(value) => {
                let mut out = success(value);
                if out[0] == STATUS_OK {
                    out[0] = STATUS_STOP;
                }
                out
            }
        }
    }
}

/// Encodes any other returned value as the output.
pub trait EncodeValue {
    /// The encoded output.
    fn encode(&self) -> Vec<u8>;
}

impl<T: Serialize> EncodeValue for &Returned<T> {
    fn encode(&self) -> Vec<u8> {
        success(&self.0)
    }
}

/// What a panic's message says, with an explanation added to std's own where a guest
/// needs one: std's "time not implemented on this platform" (`Instant::now()`,
/// `SystemTime::now()`) becomes why tasks have no clock and what to do instead.
pub fn explain_panic(message: &str) -> String {
    if message.contains("time not implemented") {
        format!(
            "{message}: a Dipla task has no clock (Instant::now, SystemTime::now), so that \
             every worker computes the same result from the same input. Pass the time in as \
             part of the task's input, and measure a task's cost in fuel, which \
             `dipla-server try` prints"
        )
    } else {
        message.to_owned()
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::run;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::sync::{Mutex, Once};

    /// The last panic's message, for the host to read after the `unreachable` trap.
    static PANIC: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    /// Runs one task export: reads the input the host wrote at `ptr`, calls `body`, and
    /// returns the encoded output as `(ptr << 32) | len`. The output is never freed: the host
    /// throws the whole instance away after one call.
    pub fn run(ptr: u32, len: u32, body: impl FnOnce(&[u8]) -> Vec<u8>) -> u64 {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("panic");
                let message = super::explain_panic(message);
                let text = match info.location() {
                    Some(at) => format!("{message} (at {}:{})", at.file(), at.line()),
                    None => message.to_owned(),
                };
                if let Ok(mut slot) = PANIC.lock() {
                    *slot = text.into_bytes();
                }
            }));
        });
        // SAFETY: the host allocated `len` bytes at `ptr` with `cabi_realloc` and wrote the
        // input there; nothing else touches them during the call.
        let input = unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) };
        let output = std::mem::ManuallyDrop::new(body(input));
        ((output.as_ptr() as usize as u64) << 32) | output.len() as u64
    }

    /// The message of the last panic as `(ptr << 32) | len`, or 0 when there was none.
    #[unsafe(no_mangle)]
    pub extern "C" fn dipla_panic_message() -> u64 {
        match PANIC.lock() {
            Ok(slot) if !slot.is_empty() => {
                ((slot.as_ptr() as usize as u64) << 32) | slot.len() as u64
            }
            _ => 0,
        }
    }

    /// The component model's allocator export: the host calls `cabi_realloc(0, 0, 1, len)`
    /// to get room for a task's input.
    ///
    /// # Safety
    /// `old_ptr` and `old_len` must describe a block this function returned with `align`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn cabi_realloc(
        old_ptr: *mut u8,
        old_len: usize,
        align: usize,
        new_len: usize,
    ) -> *mut u8 {
        use std::alloc::{Layout, alloc, realloc};
        if new_len == 0 {
            return align as *mut u8;
        }
        let Ok(layout) = Layout::from_size_align(new_len, align) else {
            std::process::abort();
        };
        // SAFETY: `layout` has a non-zero size; for a reallocation the caller promises that
        // `old_ptr` came from this allocator with this alignment and `old_len`.
        let ptr = unsafe {
            if old_len == 0 {
                alloc(layout)
            } else {
                realloc(
                    old_ptr,
                    Layout::from_size_align_unchecked(old_len, align),
                    new_len,
                )
            }
        };
        if ptr.is_null() {
            std::process::abort();
        }
        ptr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(output: &[u8]) -> (u8, &str) {
        (output[0], std::str::from_utf8(&output[1..]).unwrap())
    }

    #[test]
    fn values_encode_as_json() {
        assert_eq!(
            text(&(&Returned(vec![2u64, 3])).encode()),
            (STATUS_OK, "[2,3]")
        );
    }

    #[test]
    fn ok_encodes_its_value_and_err_its_message() {
        let ok: Result<u8, String> = Ok(5);
        assert_eq!(text(&Returned(ok).encode()), (STATUS_OK, "5"));
        let err: Result<u8, std::fmt::Error> = Err(std::fmt::Error);
        assert_eq!(
            text(&Returned(err).encode()),
            (STATUS_ERR, "an error occurred when formatting an argument")
        );
    }

    #[test]
    fn flow_stop_has_its_own_status() {
        let stop = Returned(crate::Flow::Stop(3u8)).encode();
        assert_eq!(text(&stop), (STATUS_STOP, "3"));
        let go = Returned(crate::Flow::Continue(4u8)).encode();
        assert_eq!(text(&go), (STATUS_OK, "4"));
    }

    #[test]
    fn unencodable_results_are_failures() {
        let map: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let output = (&Returned(map)).encode();
        let (status, message) = text(&output);
        assert_eq!(status, STATUS_ERR);
        assert!(message.contains("cannot be encoded as JSON"), "{message}");
    }

    #[test]
    fn a_clock_panic_says_why_and_what_to_do_instead() {
        let explained = explain_panic("time not implemented on this platform");
        assert!(
            explained
                .starts_with("time not implemented on this platform: a Dipla task has no clock"),
            "{explained}"
        );
        assert!(explained.contains("every worker computes the same result"));
        assert!(explained.contains("input") && explained.contains("fuel"));
        assert_eq!(explain_panic("index out of bounds"), "index out of bounds");
    }

    #[test]
    fn bad_input_names_the_mismatch() {
        let error = decode::<(u64, String)>(b"[1, 2]").unwrap_err();
        let (status, message) = text(&error);
        assert_eq!(status, STATUS_ERR);
        assert!(message.starts_with("the input does not match"), "{message}");
        assert_eq!(
            decode::<(u64, String)>(br#"[1, "a"]"#).unwrap(),
            (1, "a".to_owned())
        );
    }
}
