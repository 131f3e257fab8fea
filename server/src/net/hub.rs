//! Several jobs sharing one pool of workers (`dipla-server serve`).
//!
//! A worker's connection serves one job at a time: the hub seats each worker that joins in
//! the job furthest below its fair share, and moves workers between jobs as shares change by
//! asking them to leave: a leaving connection gets no new tasks, finishes what it runs, and
//! says goodbye with `rejoin`, so the worker connects again at once and is seated anew. A
//! worker no job needs waits in the lobby, welcomed with no job, until one arrives.
//!
//! Shares are max-min fair over cores: each job's demand is the tasks it has queued or
//! running; the cores are split equally, a job needing less than its split gets what it
//! needs, and the rest is split again among the others. A worker moves only when that
//! brings both jobs closer to their shares, so seats do not flap between equal jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::net::gate::Gate;
use crate::net::state::Handle;

/// How often shares are recomputed (demands change as jobs progress).
const REBALANCE_EVERY: Duration = Duration::from_millis(500);

/// The jobs open for work and the workers seated in them.
pub(crate) struct Hub {
    gate: Arc<Gate>,
    floor: Mutex<Floor>,
    /// Bumped when a job opens: workers in the lobby come and get seated.
    opened: watch::Sender<u64>,
    /// Set when the server shuts down.
    pub(crate) done: watch::Sender<bool>,
}

#[derive(Default)]
struct Floor {
    /// Open jobs, oldest first.
    jobs: Vec<(String, Handle)>,
    seats: HashMap<u64, SeatState>,
    next_seat: u64,
}

struct SeatState {
    job: String,
    cores: usize,
    /// A browser's: it can be seated only in jobs browsers can run.
    browser: bool,
    /// Set to ask the connection to leave.
    leave: watch::Sender<bool>,
    /// Asked to leave, for the job named: counted there already.
    bound_for: Option<String>,
}

/// A worker's place in a job; dropping it frees the place.
pub(crate) struct Seat {
    hub: Arc<Hub>,
    id: u64,
    /// The job.
    pub(crate) handle: Handle,
    /// Becomes true when the hub wants the worker elsewhere.
    pub(crate) leave: watch::Receiver<bool>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.hub.floor().seats.remove(&self.id);
    }
}

impl Hub {
    /// A hub with no jobs, admitting workers through `gate`, and its rebalancing task.
    pub(crate) fn start(gate: Arc<Gate>) -> Arc<Self> {
        let hub = Arc::new(Self {
            gate,
            floor: Mutex::default(),
            opened: watch::channel(0).0,
            done: watch::channel(false).0,
        });
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REBALANCE_EVERY);
            loop {
                ticks.tick().await;
                let Some(hub) = weak.upgrade() else { return };
                if *hub.done.borrow() {
                    return;
                }
                hub.rebalance();
            }
        });
        hub
    }

    /// Who may come in.
    pub(crate) fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    fn floor(&self) -> MutexGuard<'_, Floor> {
        self.floor.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens job `id` to workers.
    pub(crate) fn open(&self, id: &str, handle: Handle) {
        self.floor().jobs.push((id.to_owned(), handle));
        self.opened.send_modify(|generation| *generation += 1);
        self.rebalance();
    }

    /// Takes job `id` off the floor (finished or cancelled): its connections end with the
    /// job and their workers are seated elsewhere.
    pub(crate) fn close(&self, id: &str) {
        self.floor().jobs.retain(|(job, _)| job != id);
    }

    /// Notice of jobs opening, for workers in the lobby.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.opened.subscribe()
    }

    /// Whether some open job has work (that a browser can run, for a `browser`).
    pub(crate) fn wants_workers(&self, browser: bool) -> bool {
        let floor = self.floor();
        floor
            .shares(0)
            .iter()
            .any(|share| share.demand > 0 && self.fits(browser, &floor.jobs[share.index].1))
    }

    /// Whether a worker (a `browser`, or not) can work in the job of `handle`.
    fn fits(&self, browser: bool, handle: &Handle) -> bool {
        !browser || self.gate.browser.may_run(&handle.lock().job.modules)
    }

    /// Seats a worker with `cores` (a `browser`, or not) in the job furthest below its share
    /// among those it can run; `None` when none has work.
    pub(crate) fn seat(self: &Arc<Self>, cores: usize, browser: bool) -> Option<Seat> {
        let mut floor = self.floor();
        let shares = floor.shares(cores);
        let (job, handle) = shares
            .iter()
            .filter(|share| share.demand > 0 && self.fits(browser, &floor.jobs[share.index].1))
            .max_by(|a, b| {
                (a.target - a.current)
                    .total_cmp(&(b.target - b.current))
                    // On a tie, the older job.
                    .then(b.index.cmp(&a.index))
            })
            .map(|share| floor.jobs[share.index].clone())?;
        let id = floor.next_seat;
        floor.next_seat += 1;
        let (leave, leave_rx) = watch::channel(false);
        floor.seats.insert(
            id,
            SeatState {
                job,
                cores,
                browser,
                leave,
                bound_for: None,
            },
        );
        Some(Seat {
            hub: self.clone(),
            id,
            handle,
            leave: leave_rx,
        })
    }

    /// Moves workers from jobs above their share to jobs below it, one at a time while a
    /// move brings both closer.
    pub(crate) fn rebalance(&self) {
        let mut floor = self.floor();
        loop {
            let shares = floor.shares(0);
            let Some(over) = shares
                .iter()
                .max_by(|a, b| (a.current - a.target).total_cmp(&(b.current - b.target)))
            else {
                return;
            };
            let Some(under) = shares
                .iter()
                .filter(|share| share.demand > 0)
                .max_by(|a, b| (a.target - a.current).total_cmp(&(b.target - b.current)))
            else {
                return;
            };
            let (from, to) = (
                floor.jobs[over.index].0.clone(),
                floor.jobs[under.index].0.clone(),
            );
            let browsers_fit = self.fits(true, &floor.jobs[under.index].1);
            let gap = (over.current - over.target) + (under.target - under.current);
            // The smallest seat there that could move.
            let seat = floor
                .seats
                .iter_mut()
                .filter(|(_, seat)| seat.job == from && seat.bound_for.is_none())
                .filter(|(_, seat)| browsers_fit || !seat.browser)
                .min_by_key(|(id, seat)| (seat.cores, std::cmp::Reverse(**id)))
                .map(|(_, seat)| seat);
            let Some(seat) = seat else { return };
            // Moving c cores lowers the squared distance from the shares iff gap > c.
            if from == to || gap <= seat.cores as f64 {
                return;
            }
            tracing::debug!(from = %from, to = %to, cores = seat.cores, "moving a worker");
            seat.bound_for = Some(to);
            seat.leave.send_replace(true);
        }
    }
}

/// A job's place in the split: what it needs, has, and should have.
struct Share {
    index: usize,
    demand: usize,
    current: f64,
    target: f64,
}

impl Floor {
    /// Every open job's share, with `extra` more cores (a worker about to be seated).
    fn shares(&self, extra: usize) -> Vec<Share> {
        let mut shares: Vec<Share> = self
            .jobs
            .iter()
            .enumerate()
            .map(|(index, (id, handle))| {
                let demand = {
                    let core = handle.lock();
                    if core.coordinator.is_complete() || handle.is_cancelled() {
                        0
                    } else {
                        core.coordinator.demand()
                    }
                };
                let current = self
                    .seats
                    .values()
                    .filter(|seat| seat.bound_for.as_deref().unwrap_or(&seat.job) == id)
                    .map(|seat| seat.cores)
                    .sum::<usize>();
                Share {
                    index,
                    demand,
                    current: current as f64,
                    target: 0.0,
                }
            })
            .collect();
        let total = self.seats.values().map(|seat| seat.cores).sum::<usize>() + extra;
        fill(&mut shares, total as f64);
        shares
    }
}

/// Max-min fair targets: `total` split equally, capped by demand, the rest split again.
fn fill(shares: &mut [Share], total: f64) {
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by_key(|&i| shares[i].demand);
    let mut left = total;
    for (k, &i) in order.iter().enumerate() {
        let split = left / (order.len() - k) as f64;
        let target = split.min(shares[i].demand as f64);
        shares[i].target = target;
        left -= target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(demand: usize) -> Share {
        Share {
            index: 0,
            demand,
            current: 0.0,
            target: 0.0,
        }
    }

    #[test]
    fn cores_are_split_max_min_fair() {
        let mut shares = vec![share(100), share(100)];
        fill(&mut shares, 4.0);
        assert_eq!((shares[0].target, shares[1].target), (2.0, 2.0));

        // A job needing less than its split gets what it needs; the rest goes to the others.
        let mut shares = vec![share(1), share(100), share(100)];
        fill(&mut shares, 7.0);
        assert_eq!(
            (shares[0].target, shares[1].target, shares[2].target),
            (1.0, 3.0, 3.0)
        );

        // A job with nothing to do gets nothing.
        let mut shares = vec![share(0), share(5)];
        fill(&mut shares, 8.0);
        assert_eq!((shares[0].target, shares[1].target), (0.0, 5.0));
    }
}
