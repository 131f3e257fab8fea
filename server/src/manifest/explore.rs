//! How a stage may end before or after its inputs: an explore stage grows from its outputs'
//! next inputs, and a stage whose task can meet its goal stops after `stop_after` outputs
//! that do.

use super::schema::ExploreFile;
use super::{DEFAULT_MAX_EXPLORE_TASKS, Fault};
use crate::Source;

/// For an explore stage (`stages[i].explore`), the most tasks it may grow to: at least the
/// `count` inputs of its `source`, which must be a list.
pub(super) fn explore(
    i: usize,
    explore: Option<&ExploreFile>,
    source: &Source,
    count: u64,
) -> Result<Option<u64>, Fault> {
    let Some(explore) = explore else {
        return Ok(None);
    };
    if !matches!(source, Source::List(_)) {
        return Err(Fault::new(
            format!("stages[{i}].explore"),
            "an explore stage starts from a list of inputs (range, values or file)",
        ));
    }
    let max = explore.max_tasks.unwrap_or(DEFAULT_MAX_EXPLORE_TASKS);
    if max < count {
        return Err(Fault::new(
            format!("stages[{i}].explore.max_tasks"),
            format!("{max} is less than the {count} inputs the stage starts with"),
        ));
    }
    Ok(Some(max))
}

/// How many outputs that meet the goal end stage `i` (`stages[i].stop_after`, 1 unless
/// given).
pub(super) fn stop_after(i: usize, stop_after: Option<u64>) -> Result<u64, Fault> {
    let stop_after = stop_after.unwrap_or(1);
    if stop_after == 0 {
        return Err(Fault::new(
            format!("stages[{i}].stop_after"),
            "must be at least 1",
        ));
    }
    Ok(stop_after)
}
