//! The server child process: `ringio-bench serve <runtime> <service> <addr>`
//! started from the cell's process, owned by a guard that kills and reaps
//! it on every path out of the cell.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::stats;

/// How long a server may take to print `READY <port>`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running server process; dropping it kills and reaps the process.
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `runtime`'s `service` server on an ephemeral loopback port
    /// and waits for it to be ready.
    pub fn start(runtime: &str, service: &str) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .args(["serve", runtime, service, "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the {runtime} server: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        // The guard exists from here on, so a failed start is reaped too.
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let res = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(res);
            // Keep the pipe open (unread) until the server exits.
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(format!("{runtime} server stdout: {e}")),
            Err(_) => {
                return Err(format!(
                    "{runtime} server not ready within {READY_TIMEOUT:?} (exited: {:?})",
                    server.child.try_wait().ok().flatten()
                ))
            }
        };
        let port: u16 = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("{runtime} server said {line:?}, not READY <port>"))?;
        server.addr.set_port(port);
        Ok(server)
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's CPU time so far (`/proc/<pid>/stat`).
    pub fn cpu(&self) -> Result<Duration, String> {
        stats::process_cpu(self.pid())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
