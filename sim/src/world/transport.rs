//! The server's side of a run, as `dipla-server`'s transport does it: messages become the
//! core's inputs, and its effects become messages, journal records, written results.

use dipla_core::{Answer, Departure, Effect, Event, TaskRef, Wake, WorkerId};

use super::{Down, Ev, Up, World, raw};
use crate::fleet::Behaviour;
use crate::ledger::number;
use crate::shape::{Computed, Input, Kind};

impl World {
    pub(super) fn server_gets(&mut self, id: WorkerId, up: Up) -> Result<(), String> {
        if !self.conns.get(&id).is_some_and(|c| c.open) {
            return Ok(());
        }
        match up {
            Up::Bogus => {
                let bogus = self.core.running() as u64 + 1_000_000_000;
                let answer = Answer {
                    fuel: 1,
                    micros: 1,
                    outcome: Ok(raw("1")),
                    stop: false,
                    verified: false,
                    capped: false,
                };
                if self.core.answer(id, bogus, answer).is_ok() {
                    return Err(format!(
                        "the core took a result for attempt {bogus}, never given"
                    ));
                }
                self.expel(id);
            }
            Up::Pause => {
                // What it held goes to the others at once, and it gets nothing more.
                self.core.pause(id);
                self.conns.get_mut(&id).expect("checked").held.clear();
                if self.core.running_on(id) != 0 {
                    return Err(format!("worker {id} paused and still holds tasks"));
                }
            }
            Up::Resume => {
                self.core.resume(id);
                self.ask(id);
            }
            Up::Result {
                attempt,
                answer,
                micros,
            } => {
                let conn = self.conns.get_mut(&id).expect("checked");
                conn.held.remove(&attempt);
                let task = self.attempt_task[&attempt];
                let explore = self.job.stages[task.stage].plan.explore.is_some();
                let outcome = match answer.json(explore) {
                    Some(json) => Ok(raw(&json)),
                    None => Err(answer.value.clone().expect_err("no output")),
                };
                let verifier = self.job.stages[task.stage].verifier && outcome.is_ok();
                let verified = verifier && self.verify(task, &answer);
                let answered = if verifier && !verified {
                    self.core
                        .reject(id, attempt, micros, "the verifier said no".into())
                } else {
                    self.core.answer(
                        id,
                        attempt,
                        Answer {
                            fuel: answer.fuel,
                            micros,
                            outcome,
                            stop: answer.stop,
                            verified,
                            capped: false,
                        },
                    )
                };
                if answered.is_err() {
                    // A worker answering a cancelled attempt twice is impossible here: the
                    // core rejecting an answer to an attempt it gave is a bug.
                    return Err(format!(
                        "the core refused worker {id}'s answer to attempt {attempt} ({task:?})"
                    ));
                }
                self.ask(id);
            }
        }
        Ok(())
    }

    /// What the stage's verifier says of an answer: whether it is what the task computes on
    /// the input it was given (the inputs it discovers included).
    pub(super) fn verify(&self, task: TaskRef, answer: &Computed) -> bool {
        match self.ledger.expected(&self.job, task) {
            // It sees the whole answer: an explore task's discovered inputs too.
            Some(expected) => expected.value == answer.value && expected.next == answer.next,
            None => true,
        }
    }

    pub(super) fn expel(&mut self, id: WorkerId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.open = false;
        let vol = conn.vol;
        self.core.expel(id);
        if self.conn_of[vol] == Some(id) {
            self.conn_of[vol] = None;
            let back = self.now + self.rng.range(1_000, 2_000_000);
            self.at(back, Ev::Join(vol));
        }
    }

    pub(super) fn gone(&mut self, id: WorkerId, departure: Departure) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if !conn.open {
            self.conns.remove(&id);
            return;
        }
        if departure == Departure::Lost {
            let vol = conn.vol;
            for attempt in conn.held.clone() {
                let task = self.attempt_task[&attempt];
                self.lost_by.entry(task).or_default().insert(vol);
            }
        }
        self.core.journal_worker(id, &format!("w{id}"));
        self.core.depart(id, departure);
        self.conns.remove(&id);
    }

    pub(super) fn ask(&mut self, id: WorkerId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.asked = false;
        if !conn.open || self.done {
            return;
        }
        let assignments = self.core.assign(id);
        for assignment in assignments {
            let mut tasks = Vec::new();
            for (attempt, index) in assignment.tasks {
                let task = TaskRef {
                    stage: assignment.stage,
                    index,
                };
                self.attempt_task.insert(attempt, task);
                let input = self.task_input(task).ok_or(task);
                let Ok(input) = input else {
                    // Reported by `check` through `missing`.
                    self.missing.get_or_insert(task);
                    continue;
                };
                tasks.push((attempt, task, input));
                self.conns.get_mut(&id).expect("live").held.insert(attempt);
            }
            self.down(id, Down::Tasks(tasks));
        }
    }

    /// A task's input, as the server builds it from what the core holds.
    pub(super) fn task_input(&self, task: TaskRef) -> Option<Input> {
        let core = &self.core;
        match &self.job.stages[task.stage].kind {
            Kind::Map => Some(Input::Value(self.job.input(task.stage, task.index))),
            Kind::Explore { seeds, .. } => {
                let n = task.index as usize;
                match seeds.get(n) {
                    Some(&seed) => Some(Input::Value(seed)),
                    None => core
                        .discovered(task.stage, (n - seeds.len()) as u64)
                        .and_then(|raw| number(raw).ok())
                        .map(Input::Value),
                }
            }
            Kind::Zip(sources) => sources
                .iter()
                .map(|&source| {
                    core.item(source, task.index)
                        .and_then(|raw| number(raw).ok())
                })
                .collect::<Option<Vec<u64>>>()
                .map(Input::Items),
            Kind::Reduce(_) => core
                .group(task)
                .into_iter()
                .map(|raw| number(raw).ok())
                .collect::<Option<Vec<u64>>>()
                .map(Input::Group),
        }
    }

    /// Carries out the core's effects.
    pub(super) fn effects(&mut self) -> Result<(), String> {
        while self.core.has_effects() {
            for effect in self.core.take_effects() {
                if self.trace && !matches!(effect, Effect::Journal(_) | Effect::Wake(_)) {
                    eprintln!("{:>12}   effect {effect:?}", self.now);
                }
                match effect {
                    Effect::Journal(record) => {
                        if self.trace {
                            eprintln!("{:>12}   journal {record:?}", self.now);
                        }
                        self.ledger
                            .read(&self.job, &record, &self.liars, &self.caught)?;
                        self.journal.push(record);
                    }
                    Effect::Wake(Wake::All) => {
                        let ids: Vec<WorkerId> = self.conns.keys().copied().collect();
                        for id in ids {
                            self.wake(id);
                        }
                    }
                    Effect::Wake(Wake::Worker(id)) => self.wake(id),
                    Effect::Cancel { worker, attempts } => {
                        if let Some(conn) = self.conns.get_mut(&worker)
                            && conn.open
                        {
                            for attempt in &attempts {
                                conn.held.remove(attempt);
                            }
                            self.down(worker, Down::Cancel(attempts));
                        }
                    }
                    Effect::Ready => self.write()?,
                    Effect::Event(Event::Untrusted { identity, why }) => {
                        self.untrusted(identity, &why)?;
                    }
                    Effect::Event(Event::Started { .. } | Event::Overdue { .. }) => {}
                }
            }
        }
        // Nothing a liar caught now gave unchecked may stand in a stage that can still take
        // it back
        // (checked once the effects of its catching, revocations included, are read).
        for identity in std::mem::take(&mut self.newly_caught) {
            for (task, result) in &self.ledger.finals {
                let stage = &self.job.stages[task.stage];
                if result.by.as_deref() == Some(&identity)
                    && result.check == dipla_core::Check::Unchecked
                    && stage.replicated()
                    && !self.core.is_stage_complete(task.stage)
                {
                    return Err(format!(
                        "{identity} was caught, and its output for {task:?} stands"
                    ));
                }
            }
        }
        if self.core.is_complete() && !self.done {
            self.finish()?;
        }
        Ok(())
    }

    pub(super) fn wake(&mut self, id: WorkerId) {
        if let Some(conn) = self.conns.get_mut(&id)
            && conn.open
            && !conn.asked
        {
            conn.asked = true;
            self.at(self.now, Ev::Ask(id));
        }
    }

    pub(super) fn untrusted(&mut self, identity: String, why: &str) -> Result<(), String> {
        let Some(vol) = self.vols.iter().position(|v| v.key == identity) else {
            return Err(format!("untrusted {identity}, which never joined"));
        };
        let v = &self.vols[vol];
        if !v.behaviour.hostile() && !v.let_down && v.behaviour != Behaviour::Silent {
            return Err(format!("honest {identity} was untrusted: {why}"));
        }
        if self.liars.contains(&identity) && self.caught.insert(identity.clone()) {
            self.report.liars_caught += 1;
            self.newly_caught.push(identity);
        }
        Ok(())
    }

    /// The writer takes what is ready, in order.
    pub(super) fn write(&mut self) -> Result<(), String> {
        for finished in self.core.take_ready() {
            let task = finished.task;
            let value = match &finished.outcome {
                Ok(raw) => Ok(number(raw)?),
                Err(failure) => Err(failure.kind),
            };
            if let Some((&last, _)) = self
                .written
                .range(
                    TaskRef {
                        stage: task.stage,
                        index: 0,
                    }..,
                )
                .next_back()
                .filter(|(t, _)| t.stage == task.stage)
                && last.index >= task.index
            {
                return Err(format!("the writer took {task:?} after {last:?}"));
            }
            if self.trace {
                eprintln!("{:>12}   write {task:?} {value:?}", self.now);
            }
            self.written.insert(task, value);
        }
        Ok(())
    }

    /// The job is complete: every worker is let go, and the results are checked whole.
    pub(super) fn finish(&mut self) -> Result<(), String> {
        self.done = true;
        let ids: Vec<WorkerId> = self.conns.keys().copied().collect();
        for id in ids {
            if self.conns[&id].open {
                self.core.depart(id, Departure::Released);
            }
        }
        self.conns.clear();
        let _ = self.core.take_effects();
        if self.core.running() != 0 || self.core.queued() != 0 {
            return Err(format!(
                "complete with {} running and {} queued",
                self.core.running(),
                self.core.queued()
            ));
        }
        if self.core.kept() != 0 {
            return Err(format!(
                "complete, and {} results still kept",
                self.core.kept()
            ));
        }
        let claimers = self
            .vols
            .iter()
            .any(|v| matches!(v.behaviour, Behaviour::FailClaimer { .. }));
        crate::check::results(
            &self.job,
            &self.core,
            &self.ledger,
            &self.written,
            &self.lost_by,
            claimers,
        )
    }

    /// The server crashes: every connection ends, and a new server restores the job from
    /// the journal records emitted so far.
    pub(super) fn restart(&mut self) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        self.report.restores += 1;
        let before: Vec<u64> = (0..self.job.stages.len())
            .map(|stage| self.core.done(stage))
            .collect();
        let mut core = Self::coordinator(&self.job, self.seed ^ self.report.restores);
        for record in self.journal.clone() {
            core.restore(record);
        }
        core.set_journaling(true);
        self.core = core;
        self.core.set_clock(self.now);
        let after: Vec<u64> = (0..self.job.stages.len())
            .map(|stage| self.core.done(stage))
            .collect();
        if before != after {
            return Err(format!(
                "results lost across a restore: done per stage {before:?} before, {after:?} after"
            ));
        }
        // Every connection is gone; the volunteers reconnect.
        for (vol, slot) in self.conn_of.iter_mut().enumerate() {
            if slot.take().is_some() {
                let back = self.now + self.rng.range(1_000, 3_000_000);
                self.queue
                    .insert((back, self.seq + 1 + vol as u64), Ev::Join(vol));
            }
        }
        self.seq += self.vols.len() as u64 + 1;
        self.conns.clear();
        // `lost_by` stays: a task failed as lost before the crash is written after it.
        self.written.clear();
        self.tick_at = None;
        Ok(())
    }
}
