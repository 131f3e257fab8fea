//! Dipla end to end: a real server, real `dipla-worker` processes, real guests built from
//! source. One test binary (faster to link, one place to look).

mod support;

mod api;
mod auth;
mod bounds;
mod browser;
mod chaining;
mod chaos;
mod checks;
mod cli;
mod dashboard;
mod debugging;
mod deterministic;
mod directory;
mod driver;
mod durability;
mod early_stop;
mod examples;
mod explore;
mod factorise;
mod faults;
mod hostile_guests;
mod hostile_protocol;
mod hostile_server;
mod hostile_workers;
mod identities;
mod liveness;
mod nulls;
mod polite;
mod python;
mod reconnect;
mod serve;
mod shipping;
mod speeds;
mod status;
mod tls;
mod worker_urls;
