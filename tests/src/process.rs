//! The real binary as a child process, on a test database.

use crate::{TestDb, binary};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A master key every test process shares, so links signed by one are valid in another.
pub const MASTER_KEY: &str = "bXVsdGktcmVwbGljYS10ZXN0LWtleS0zMi1ieXRlcyE=";

/// The binary on the test database, with none of the caller's RF_* settings.
pub fn command(db: &TestDb, dir: &std::path::Path) -> Command {
    let mut command = Command::new(binary());
    for (key, _) in std::env::vars() {
        if key.starts_with("RF_") {
            command.env_remove(key);
        }
    }
    command
        .current_dir(dir)
        .env("RF_DATABASE_URL", &db.url)
        .env("RF_MASTER_KEY", MASTER_KEY)
        .env("RF_LOG", "warn");
    command
}

/// A `resolutionflow serve` process, killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `resolutionflow serve` on a free port with `env` added, and waits until it is ready.
pub async fn serve(db: &TestDb, dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut command = command(db, dir);
    command
        .args(["serve", "--no-console"])
        .env("RF_LISTEN", format!("127.0.0.1:{port}"))
        .env("RF_PUBLIC_URL", &url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("RF_TEST_SERVER_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    for (key, value) in env {
        command.env(key, value);
    }
    let server = Server {
        child: command.spawn().unwrap(),
        url,
    };
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if client
            .get(format!("{}/readyz", server.url))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server at {} did not become ready", server.url);
}
