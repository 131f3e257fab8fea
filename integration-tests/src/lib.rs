//! End-to-end tests of Dipla live in `tests/`; this crate has no library code.
