//! Misuse of `#[task]` fails to compile with a message pointing at the mistake. The expected
//! messages are pinned in `tests/ui/*.stderr` (regenerate with `TRYBUILD=overwrite`).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass_*.rs");
    cases.compile_fail("tests/ui/fail_*.rs");
}
