//! The simulator as a test: a batch of seeds keeps every invariant, and a seed is a run.
//! (CI runs thousands more with `cargo xtask sim`.)

use dipla_sim::run;

#[test]
fn a_batch_of_seeds_keeps_every_invariant() {
    let failures: Vec<String> = (0..300u64)
        .filter_map(|seed| run(seed).err())
        .map(|failure| failure.what)
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_seed_is_the_same_run_every_time() {
    for seed in [3, 41, 909] {
        let first = run(seed).expect("the seed passes");
        let again = run(seed).expect("the seed passes");
        assert_eq!(first, again, "seed {seed}");
        assert!(first.events > 0 && first.records > 0, "{first:?}");
    }
}

#[test]
fn seeds_reach_what_they_are_meant_to() {
    // Across a batch: big fleets, crashes, restores, pauses and caught liars all happen (a
    // simulator that never exercised them would pass for nothing).
    let reports: Vec<_> = (0..300u64).filter_map(|seed| run(seed).ok()).collect();
    assert!(reports.iter().any(|r| r.workers >= 200));
    assert!(reports.iter().any(|r| r.crashes > 0));
    assert!(reports.iter().any(|r| r.restores > 0));
    assert!(reports.iter().any(|r| r.liars_caught > 0));
    assert!(reports.iter().any(|r| r.pauses > 0));
}
