//! The job's faces that only read it: the JSON API, the health answer a directory polls, the
//! terminal progress bar, and the remote driver's wire records (its mirror). Uses
//! [`crate::net`], [`crate::store`] and [`crate::directory`].

pub(crate) mod api;
pub(crate) mod health;
pub(crate) mod mirror;
pub mod progress;
