//! The volunteers' side of a run: joining, running what they are sent on their cores,
//! answering (honestly or not), crashing and leaving.

use std::collections::{HashMap, HashSet};

use dipla_core::{AttemptId, Departure, WorkerId};

use super::{Conn, Down, Ev, HEARTBEAT, Up, World};
use crate::fleet::Behaviour;

impl World {
    pub(super) fn join(&mut self, vol: usize) {
        if self.conn_of[vol].is_some() || self.vols[vol].leaves == Some(0) {
            return;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        self.conn_of[vol] = Some(id);
        let cores = self.vols[vol].cores;
        self.conns.insert(
            id,
            Conn {
                vol,
                down_at: self.now,
                up_at: self.now,
                asked: false,
                cores: vec![self.now; cores],
                running: HashMap::new(),
                held: HashSet::new(),
                open: true,
                paused: false,
            },
        );
        // The server's side of the hello.
        let v = &self.vols[vol];
        self.core.join(id, v.claimed_cores);
        self.core.place(id, &v.address);
        self.core.identify(id, &v.key, None);
        self.core.claim(id, v.claimed);
        self.ask(id);
    }

    pub(super) fn worker_gets(&mut self, id: WorkerId, down: Down) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if self.conn_of[conn.vol] != Some(id) {
            return;
        }
        match down {
            Down::Cancel(attempts) => {
                for attempt in attempts {
                    conn.running.remove(&attempt);
                }
            }
            // Sent before the server heard of the pause: it gave them to others.
            Down::Tasks(_) if conn.paused => {}
            Down::Tasks(tasks) => {
                let vol = conn.vol;
                for (attempt, task, input) in tasks {
                    let honest = self.job.compute(task.stage, &input);
                    let answer = self.vols[vol].answer(&honest, vol as u64, &mut self.rng);
                    let conn = self.conns.get_mut(&id).expect("checked");
                    conn.running.insert(attempt, (task, answer.clone()));
                    if self.vols[vol].behaviour == Behaviour::Silent {
                        continue;
                    }
                    let core = (0..conn.cores.len())
                        .min_by_key(|&c| conn.cores[c])
                        .expect("a core");
                    let start = conn.cores[core].max(now);
                    let takes = (answer.fuel as f64 / self.vols[vol].speed) as u64 + 1;
                    conn.cores[core] = start + takes;
                    self.at(start + takes, Ev::Finished(id, attempt));
                }
                if self.vols[vol].behaviour == Behaviour::Violator && self.rng.chance(0.3) {
                    self.up(id, Up::Bogus);
                }
            }
        }
    }

    pub(super) fn finished(&mut self, id: WorkerId, attempt: AttemptId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some((_, answer)) = conn.running.remove(&attempt) else {
            return;
        };
        let micros = (answer.fuel as f64 / self.vols[conn.vol].speed) as u64 + 1;
        self.up(
            id,
            Up::Result {
                attempt,
                answer,
                micros,
            },
        );
    }

    /// The volunteer pauses its worker (`pause`: it stops its tasks and says so) or lets it
    /// run again.
    pub(super) fn pause(&mut self, vol: usize, pause: bool) {
        let Some(id) = self.conn_of[vol] else {
            return;
        };
        let now = self.now;
        let conn = self.conns.get_mut(&id).expect("live");
        if conn.paused == pause {
            return;
        }
        conn.paused = pause;
        if pause {
            // Its tasks stop where they are; nothing is answered for them.
            conn.running.clear();
            for core in &mut conn.cores {
                *core = (*core).min(now);
            }
            self.report.pauses += 1;
        }
        self.up(id, if pause { Up::Pause } else { Up::Resume });
    }

    /// Sends a message to the server, after the connection's earlier ones.
    pub(super) fn up(&mut self, id: WorkerId, up: Up) {
        let delay = self.rng.range(1, self.delay);
        let conn = self.conns.get_mut(&id).expect("live");
        conn.up_at = conn.up_at.max(self.now + delay);
        let when = conn.up_at;
        self.at(when, Ev::ToServer(id, up));
    }

    /// Sends a message to a worker, after the connection's earlier ones.
    pub(super) fn down(&mut self, id: WorkerId, down: Down) {
        let delay = self.rng.range(1, self.delay);
        let conn = self.conns.get_mut(&id).expect("live");
        conn.down_at = conn.down_at.max(self.now + delay);
        let when = conn.down_at;
        self.at(when, Ev::ToWorker(id, down));
    }

    /// A machine crashes (`crash`) or its volunteer closes the worker: either way the
    /// connection ends with whatever it was running.
    pub(super) fn crash(&mut self, vol: usize, crash: bool) {
        let Some(id) = self.conn_of[vol].take() else {
            return;
        };
        let conn = self.conns.get_mut(&id).expect("live");
        if !conn.held.is_empty() {
            self.vols[vol].let_down = true;
            if crash {
                self.report.crashes += 1;
            }
        }
        conn.running.clear();
        // A crash is noticed when the heartbeat goes unanswered; a closed connection at once.
        let notice = if crash {
            self.rng.range(1, HEARTBEAT)
        } else {
            self.rng.range(1, self.delay)
        };
        self.at(self.now + notice, Ev::Gone(id, Departure::Lost));
        if crash && self.vols[vol].leaves.is_none() {
            let back = self.now + self.rng.range(1_000, 5_000_000);
            self.at(back, Ev::Join(vol));
        }
    }
}
