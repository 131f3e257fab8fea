//! Attacks played with the [`attacker`](crate::attacker) client, shared by the
//! hostile-protocol integration tests and the benchmark of a job under attack: serving a
//! connection with made-up answers, claiming every task failed, taking tasks and leaving
//! politely, and a [`Tally`] of what the attackers did.
//!
//! The drivers that start a task use `tokio::spawn`: call them inside a tokio runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tokio::task::JoinHandle;

use crate::attacker::{Answer, Conn, Event, Key, Outcome, Receipt, Task};

/// What the attackers of one run did, over all their connections.
#[derive(Debug, Default)]
pub struct Tally {
    /// Tasks given.
    pub given: AtomicU64,
    /// Results sent.
    pub answered: AtomicU64,
    /// Tasks held now: given, not answered, not cancelled, connection open.
    pub in_flight: AtomicI64,
    /// The most tasks held at once.
    pub most: AtomicI64,
    /// Connections that took tasks and closed politely.
    pub quits: AtomicU64,
    /// Told of every answer and polite quit, for those waiting on them.
    acted: tokio::sync::Notify,
}

impl Tally {
    /// Counts `n` tasks given and now held.
    pub fn given(&self, n: usize) {
        self.given.fetch_add(n as u64, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(n as i64, Ordering::SeqCst) + n as i64;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    /// Counts `n` held tasks no longer held.
    pub fn dropped(&self, n: usize) {
        self.in_flight.fetch_sub(n as i64, Ordering::SeqCst);
    }

    /// Counts `n` results sent.
    pub fn answered(&self, n: usize) {
        self.answered.fetch_add(n as u64, Ordering::SeqCst);
        self.acted.notify_waiters();
    }

    /// Counts a connection that took tasks and closed politely.
    pub fn quit(&self) {
        self.quits.fetch_add(1, Ordering::SeqCst);
        self.acted.notify_waiters();
    }

    /// Waits until `done` holds of the tally, looking again at each answer or quit.
    pub async fn until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            // Made before the check, so an answer between the two is not missed.
            let acted = self.acted.notified();
            if done(self) {
                return;
            }
            acted.await;
        }
    }

    /// The value of one of the counters.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

/// Serves a joined connection until the server says goodbye or closes it: each task given is
/// answered with what `answer` says (held when it says `None`), in one signed message per
/// batch. Returns how the connection ended.
pub async fn serve(
    mut conn: Conn,
    key: &Key,
    tally: &Tally,
    mut answer: impl FnMut(&Task) -> Option<Answer>,
) -> Event {
    loop {
        match conn.next().await {
            Event::Tasks(tasks) => {
                tally.given(tasks.len());
                let answers: Vec<Answer> = tasks.iter().filter_map(&mut answer).collect();
                if !answers.is_empty() {
                    tally.dropped(answers.len());
                    tally.answered(answers.len());
                    conn.answer(key, &answers, Receipt::Right).await;
                }
            }
            Event::Cancel(ids) => tally.dropped(ids.len()),
            Event::Goodbye(reason) => {
                tally.dropped(conn.held.len());
                conn.close().await;
                return Event::Goodbye(reason);
            }
            Event::Closed(closed) => {
                tally.dropped(conn.held.len());
                return Event::Closed(closed);
            }
            _ => {}
        }
    }
}

/// An answer with `outcome`, claiming a task took 1 µs.
pub fn fast(task: &Task, outcome: Outcome) -> Answer {
    Answer {
        id: task.id,
        outcome,
        fuel: 1_000,
        micros: 1,
    }
}

/// Joins as `key` with `cores` and answers every task with a made-up panic, correctly
/// signed, claiming 1 µs each; how the connection ended (`None`: the join was refused).
pub fn claim_failures(
    url: &str,
    key: &Arc<Key>,
    cores: u64,
    tally: &Arc<Tally>,
) -> JoinHandle<Option<Event>> {
    let (url, key, tally) = (url.to_owned(), key.clone(), tally.clone());
    tokio::spawn(async move {
        let conn = Conn::join(&url, &key, "claimer", cores).await.ok()?;
        let made_up = Outcome::failure("panic", "made up");
        Some(serve(conn, &key, &tally, |task| Some(fast(task, made_up.clone()))).await)
    })
}

/// Joins as `key` claiming 64 cores, takes the first batch of tasks and closes politely;
/// again, up to `rounds` times, until the server has nothing more for it.
pub fn quit_politely(
    url: &str,
    key: &Arc<Key>,
    tally: &Arc<Tally>,
    rounds: usize,
) -> JoinHandle<()> {
    let (url, key, tally) = (url.to_owned(), key.clone(), tally.clone());
    tokio::spawn(async move {
        for _ in 0..rounds {
            let Ok(mut conn) = Conn::join(&url, &key, "quitter", 64).await else {
                return;
            };
            loop {
                match conn.next().await {
                    Event::Tasks(tasks) => {
                        tally.given(tasks.len());
                        tally.dropped(conn.close().await);
                        tally.quit();
                        break;
                    }
                    Event::Goodbye(_) => {
                        conn.close().await;
                        return;
                    }
                    Event::Closed(_) => return,
                    _ => {}
                }
            }
        }
    })
}

/// Issue 16's wipeout: one identity on four connections, two claiming every task failed in
/// 1 µs (8 cores claimed each), two taking tasks on 64 claimed cores and leaving politely, up
/// to 500 times each. Its acceptance figure: beside two honest workers in a 2,000-task job,
/// no task fails, no output is wrong, the identity is marked untrusted, and the job takes
/// less than twice as long as without it.
pub struct Wipeout {
    claimers: Vec<JoinHandle<Option<Event>>>,
    quitters: Vec<JoinHandle<()>>,
}

impl Wipeout {
    /// Starts the attack on the server at `url` as `key`, counting in `tally`.
    pub fn start(url: &str, key: &Arc<Key>, tally: &Arc<Tally>) -> Self {
        Self {
            claimers: (0..2).map(|_| claim_failures(url, key, 8, tally)).collect(),
            quitters: (0..2)
                .map(|_| quit_politely(url, key, tally, 500))
                .collect(),
        }
    }

    /// Whether the attack `tally` counts is under way: a failure claimed or a polite
    /// disconnect made (either can get the identity cut off before the other happens).
    pub fn under_way(tally: &Tally) -> bool {
        Tally::get(&tally.answered) > 0 || Tally::get(&tally.quits) > 0
    }

    /// Waits for every connection of the attack to end (they end with the job).
    ///
    /// # Errors
    ///
    /// When one of its tasks panicked.
    pub async fn ended(self) -> Result<(), tokio::task::JoinError> {
        for claimer in self.claimers {
            claimer.await?;
        }
        for quitter in self.quitters {
            quitter.await?;
        }
        Ok(())
    }
}
