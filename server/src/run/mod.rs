//! Running jobs: the engine (listeners, routes and local workers), the manifest runner, the
//! multi-job service with its jobs API and dashboard, the volunteer page (a browser joining as
//! a worker), the checks of a stage a driver adds, and
//! the trial run. Uses every layer below it.

pub(crate) mod dashboard;
pub(crate) mod engine;
pub(crate) mod jobs_api;
pub mod serve;
pub(crate) mod server;
pub(crate) mod stage_check;
pub mod trial;
pub(crate) mod volunteer;
