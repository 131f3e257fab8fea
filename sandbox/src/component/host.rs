//! What a component's store holds: a closed, deterministic WASI context.
//!
//! A Python guest imports WASI 0.2 (clocks, random, stdio, files, sockets). It gets a context
//! that is a pure function of the module, the task and its input, so that every honest worker
//! computes the same output with the same fuel: no arguments, no preopened directory, an
//! environment holding only a fixed `PYTHONHASHSEED`, wall and monotonic clocks fixed at one
//! instant (sleeps return at once), random numbers from generators seeded by the task's
//! input digest, sockets and name lookup refused, stdout and stderr into a bounded log.

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng;
use sha2::{Digest, Sha256};
use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::log::BoundedLog;
use crate::limits::Limiter;

/// The instant every wall clock shows: 2000-01-01T00:00:00Z.
pub(crate) const FIXED_UNIX_SECS: u64 = 946_684_800;
/// What the monotonic clock reads, in nanoseconds.
const FIXED_MONOTONIC_NANOS: u64 = 1_000_000_000;
/// The most random bytes one call may ask for.
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// The store data of a component task.
pub(crate) struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Host {
    /// The store data for task `export` on `input`, logging into `log`.
    pub(crate) fn new(export: &str, input: &[u8], log: &BoundedLog, limiter: Limiter) -> Self {
        let mut digest = Sha256::new();
        digest.update(export.as_bytes());
        digest.update([0]);
        digest.update(input);
        let digest: [u8; 32] = digest.finalize().into();
        let seed = seeded("insecure-seed", &digest);
        let mut wasi = WasiCtx::builder();
        // No arguments, no preopened directories and stdin at its end are the defaults.
        wasi.env("PYTHONHASHSEED", "0")
            .wall_clock(FixedWall)
            .monotonic_clock(FixedMonotonic)
            .secure_random(ChaCha20Rng::from_seed(seeded("secure", &digest)))
            .insecure_random(ChaCha20Rng::from_seed(seeded("insecure", &digest)))
            .insecure_random_seed(u128::from_le_bytes(
                seed[..16].try_into().expect("16 of 32 bytes"),
            ))
            .max_random_size(MAX_RANDOM_BYTES)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .stdout(log.clone())
            .stderr(log.clone());
        Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter,
        }
    }
}

/// sha256(`label` ‖ `digest`): one seed per purpose.
fn seeded(label: &str, digest: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(label.as_bytes());
    hash.update(digest);
    hash.finalize().into()
}

struct FixedWall;

impl HostWallClock for FixedWall {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::from_secs(FIXED_UNIX_SECS)
    }
}

struct FixedMonotonic;

impl HostMonotonicClock for FixedMonotonic {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        FIXED_MONOTONIC_NANOS
    }
}

/// `wasi:clocks/monotonic-clock`, replacing wasmtime-wasi's: the same fixed instant, and
/// every sleep ready at once. wasmtime-wasi's sleeps for real inside host code, where the
/// wall-clock limit cannot interrupt it (`time.sleep(5)` outlived a 1 s limit).
pub(crate) struct VirtualClock;

impl HasData for VirtualClock {
    type Data<'a> = ClockView<'a>;
}

/// What the virtual clock's functions see.
pub(crate) struct ClockView<'a>(pub(crate) &'a mut ResourceTable);

impl Host {
    /// The virtual clock's view of the store.
    pub(crate) fn clock(&mut self) -> ClockView<'_> {
        ClockView(&mut self.table)
    }
}

/// A pollable that is always ready.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

fn ready(table: &mut ResourceTable) -> wasmtime::Result<Resource<DynPollable>> {
    let ready = table.push(Ready)?;
    wasmtime_wasi::p2::subscribe(table, ready)
}

impl wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host for ClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(FIXED_MONOTONIC_NANOS)
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1)
    }

    fn subscribe_instant(&mut self, _: u64) -> wasmtime::Result<Resource<DynPollable>> {
        ready(self.0)
    }

    fn subscribe_duration(&mut self, _: u64) -> wasmtime::Result<Resource<DynPollable>> {
        ready(self.0)
    }
}
