//! The instrumented module against the sandbox, as one test binary.

mod common;
mod guests;
mod node;
mod slowdown;
mod wat;
