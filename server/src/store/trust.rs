//! Trust that belongs to the server, not to one job: under `serve`, every identity's record
//! (credibility, the untrusted mark and why, strikes for abandoned work) is shared by all its
//! jobs and kept in the data folder (`trust.state`, SQLite), so an identity caught lying or
//! walking away with work in one job does not start afresh in the next, nor after a restart.
//!
//! Records only grow (counts go up, a mark stays), so two views of one identity are merged by
//! taking the larger of each count and any mark: a job's coordinator takes the server's record
//! when the identity joins it, and gives back every change it journals.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, params};

use dipla_core::Credibility;

/// Every identity's record, shared by a server's jobs and written behind them.
pub struct TrustStore {
    records: Mutex<HashMap<String, Credibility>>,
    /// The writer thread's channel, and the thread (joined when the store is dropped, so
    /// what was updated is on disk).
    writer: Mutex<Option<mpsc::Sender<(String, Credibility)>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for TrustStore {
    fn drop(&mut self) {
        drop(
            self.writer
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if let Some(thread) = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore").finish_non_exhaustive()
    }
}

impl TrustStore {
    /// Opens (or makes) the store at `path` and reads every record it holds.
    ///
    /// # Errors
    /// When the file cannot be opened or read.
    pub fn open(path: &Path) -> Result<Arc<Self>, rusqlite::Error> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS identities (key TEXT PRIMARY KEY, record TEXT NOT NULL);",
        )?;
        let mut records = HashMap::new();
        {
            let mut query = db.prepare("SELECT key, record FROM identities")?;
            let mut rows = query.query([])?;
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                let text: String = row.get(1)?;
                match serde_json::from_str(&text) {
                    Ok(record) => {
                        records.insert(key, record);
                    }
                    Err(error) => tracing::warn!(%key, %error, "unreadable trust record skipped"),
                }
            }
        }
        let (writer, received) = mpsc::channel::<(String, Credibility)>();
        let thread = std::thread::Builder::new()
            .name("dipla-trust".into())
            .spawn(move || write(&db, &received))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Arc::new(Self {
            records: Mutex::new(records),
            writer: Mutex::new(Some(writer)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// What the server knows of identity `key`.
    pub fn get(&self, key: &str) -> Option<Credibility> {
        self.lock().get(key).cloned()
    }

    /// The record of identity `key` if it is marked untrusted.
    pub fn untrusted(&self, key: &str) -> Option<Credibility> {
        self.lock()
            .get(key)
            .filter(|record| record.untrusted.is_some())
            .cloned()
    }

    /// Merges a job's view of identity `key` into the server's, and keeps it.
    pub fn update(&self, key: &str, record: &Credibility) {
        let merged = {
            let mut records = self.lock();
            let entry = records.entry(key.to_owned()).or_default();
            entry.merge(record);
            entry.clone()
        };
        if let Some(writer) = &*self.writer.lock().unwrap_or_else(PoisonError::into_inner) {
            let _ = writer.send((key.to_owned(), merged));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Credibility>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes records as they come, a batch per transaction, until the store is dropped.
fn write(db: &Connection, received: &mpsc::Receiver<(String, Credibility)>) {
    while let Ok(first) = received.recv() {
        let mut batch = vec![first];
        batch.extend(received.try_iter());
        let written = (|| -> rusqlite::Result<()> {
            let tx = db.unchecked_transaction()?;
            for (key, record) in &batch {
                let text = serde_json::to_string(record).unwrap_or_default();
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO identities (key, record) VALUES (?1, ?2)",
                )?
                .execute(params![key, text])?;
            }
            tx.commit()
        })();
        if let Err(error) = written {
            tracing::error!(%error, "cannot write the server's trust records");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_merge_and_outlive_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust.state");
        let store = TrustStore::open(&path).unwrap();
        let caught = Credibility {
            agreed: 3,
            untrusted: Some("lied in job a".into()),
            ..Credibility::default()
        };
        store.update("k", &caught);
        // Another job's older view does not undo the mark.
        let older = Credibility {
            agreed: 1,
            accepted: 10,
            ..Credibility::default()
        };
        store.update("k", &older);
        let merged = store.get("k").unwrap();
        assert_eq!(merged.untrusted.as_deref(), Some("lied in job a"));
        assert_eq!((merged.agreed, merged.accepted), (3, 10));
        // Dropping the store waits for its writer.
        drop(store);
        let reopened = TrustStore::open(&path).unwrap();
        assert_eq!(reopened.get("k").unwrap(), merged);
    }
}
