//! What the server keeps: the job's journal (for resuming), the results file, the audit
//! trail, the workers' identity records and the tasks' logs. Uses the job model
//! ([`crate::manifest`]) and nothing above.

pub mod audit;
pub mod journal;
pub mod output;
pub mod task_logs;
pub(crate) mod trust;
