//! The driver's side of a job run by a remote server ([`crate::mirror`] says how): what the
//! driver adds goes up in order, what the remote coordinator decides comes down and is
//! replayed into the driver's own.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::mirror::Event;
use crate::state::Handle;
use crate::{DriverError, Stage};

/// What goes up to the remote job, in the order the driver made it.
enum Up {
    Module(Arc<[u8]>),
    Stage(Box<Stage>),
}

/// A driver's job on a remote server.
pub(crate) struct Remote {
    client: Arc<Client>,
    id: String,
    up: mpsc::UnboundedSender<Up>,
    tasks: [JoinHandle<()>; 2],
}

impl Remote {
    /// Opens a job for the driver of `handle` on the server at `url`, and starts sending
    /// and replaying.
    pub(crate) async fn open(url: &str, token: &str, handle: &Handle) -> Result<Self, DriverError> {
        let start = |message: String| DriverError::Start(message);
        let client = Arc::new(Client::new(url, token).map_err(|e| start(e.to_string()))?);
        let id = client
            .open_driver("driver")
            .await
            .map_err(|e| start(e.to_string()))?
            .id;
        tracing::info!(server = %url, job = %id, "driving a job on a remote server");
        let (up, rx) = mpsc::unbounded_channel();
        let sender = tokio::spawn(send(client.clone(), id.clone(), rx, handle.clone()));
        let replayer = tokio::spawn(replay(client.clone(), id.clone(), handle.clone()));
        Ok(Self {
            client,
            id,
            up,
            tasks: [sender, replayer],
        })
    }

    /// Sends a module the driver admitted.
    pub(crate) fn module(&self, bytes: Arc<[u8]>) {
        let _ = self.up.send(Up::Module(bytes));
    }

    /// Sends a stage the driver made (call in the order stages are numbered).
    pub(crate) fn stage(&self, stage: &Stage) {
        // A stage is sent as JSON; a copy through serde is the simplest deep clone.
        match serde_json::to_value(stage).and_then(serde_json::from_value) {
            Ok(copy) => {
                let _ = self.up.send(Up::Stage(Box::new(copy)));
            }
            Err(error) => tracing::error!(%error, "cannot send a stage"),
        }
    }

    /// Ends the remote job.
    pub(crate) async fn close(&self) {
        if let Err(error) = self.client.close(&self.id).await {
            tracing::warn!(job = %self.id, %error, "cannot close the remote job");
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Sends what the driver adds, in order; a refusal ends the driver's job (promises then
/// return [`DriverError::Closed`]), since later stages would be numbered differently.
async fn send(
    client: Arc<Client>,
    id: String,
    mut up: mpsc::UnboundedReceiver<Up>,
    handle: Handle,
) {
    while let Some(item) = up.recv().await {
        let sent = match item {
            Up::Module(bytes) => client.driver_module(&id, bytes.to_vec()).await.map(drop),
            Up::Stage(stage) => client.driver_stage(&id, &stage).await.map(drop),
        };
        if let Err(error) = sent {
            tracing::error!(job = %id, %error, "the remote server refused the driver's job");
            handle.shared.done.send_replace(true);
            handle.progressed();
            return;
        }
    }
}

/// Replays what the remote coordinator decides into the driver's.
async fn replay(client: Arc<Client>, id: String, handle: Handle) {
    let apply = |line: &[u8]| -> Result<(), String> {
        let event: Event = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let mut core = handle.lock();
        let stages = core.coordinator.stage_count();
        core.coordinator.restore(event.into_record(stages)?);
        Ok(())
    };
    let followed = client
        .follow(&format!("/api/jobs/{id}/events"), |lines| {
            for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                apply(line)?;
            }
            handle.progressed();
            Ok(())
        })
        .await;
    if let Err(error) = followed {
        tracing::error!(job = %id, %error, "lost the remote job's events");
    }
    handle.shared.done.send_replace(true);
    handle.progressed();
}
