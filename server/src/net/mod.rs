//! Serving workers: the connection door and HTTP serving, TLS, tokens, the admission gate and
//! its metrics registry, the job's shared state and statistics, and the WebSocket transport
//! that hands out tasks and checks what comes back. Uses [`crate::manifest`] and
//! [`crate::store`].

pub(crate) mod auth;
pub(crate) mod browser;
pub(crate) mod door;
pub(crate) mod gate;
pub mod http;
pub(crate) mod hub;
pub(crate) mod metrics;
pub(crate) mod receipts;
pub(crate) mod state;
pub(crate) mod stats;
pub mod tls;
pub mod transport;
pub(crate) mod verification;
pub(crate) mod violation;
