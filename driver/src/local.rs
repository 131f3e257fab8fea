//! The server run inside the program (feature `local`): `dipla-server serve` on loopback with
//! local workers, driven through its API exactly as a remote one is, so there is one driver.

use std::time::Duration;

use dipla_server::{RunOptions, Serve, ServeOptions};

use crate::DriverError;

/// A server of this program's own, and what its driver needs to call it.
pub(crate) struct Local {
    serve: Serve,
    /// Where it keeps its one job; removed when dropped.
    _data: tempfile::TempDir,
    /// Its API, `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// Its admin token: random, so no other program on the machine can call the API.
    pub(crate) token: String,
}

impl Local {
    /// Starts a server with `workers` local workers on a loopback port of its own.
    pub(crate) async fn start(workers: usize) -> Result<Self, DriverError> {
        let start =
            |e: std::io::Error| DriverError::Start(format!("cannot start the local server: {e}"));
        let data = tempfile::Builder::new()
            .prefix("dipla-driver-")
            .tempdir()
            .map_err(start)?;
        let mut secret = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
        let token = hex::encode(secret);
        let run = RunOptions {
            local_workers: workers,
            admin_tokens: vec![token.clone()],
            ..RunOptions::default()
        };
        let serve = Serve::start(ServeOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            data_dir: data.path().to_owned(),
            name: "dipla-driver".into(),
            run,
            // The driver is in this process: it cannot vanish without the server.
            driver_timeout: Duration::from_secs(24 * 3600),
        })
        .await
        .map_err(start)?;
        let url = format!("http://{}", serve.local_addr());
        Ok(Self {
            serve,
            _data: data,
            url,
            token,
        })
    }

    /// Stops the server and its workers.
    pub(crate) async fn shutdown(self) {
        self.serve.shutdown().await;
    }
}
