//! Support for the cross-process tests in `tests/tests/`: start the real
//! `weir` binary as a broker on a free loopback port, stop it politely or
//! with `kill -9`, and start it again on the same data directory.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `weir` binary under test: `$WEIR_BIN`, else the one cargo built next
/// to this test executable.
pub fn weir_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test> → target/debug/weir
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("weir")
}

/// A free port on 127.0.0.1 (the OS picks it; we release it at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `check` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `weir broker` child process.
pub struct BrokerProcess {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    _temp: Option<tempfile::TempDir>,
}

impl BrokerProcess {
    /// Starts a broker on a fresh data directory; `extra` are more
    /// `--config KEY=VALUE` settings.
    pub fn start(extra: &[&str]) -> BrokerProcess {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut broker = BrokerProcess {
            child: None,
            port: free_port(),
            data_dir: temp.path().to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _temp: Some(temp),
        };
        broker.spawn();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let listen = self.bootstrap();
        let mut cmd = Command::new(weir_bin());
        cmd.args([
            "broker",
            "--node-id",
            "1",
            "--listen",
            &listen,
            "--advertise",
            &listen,
            // Tests run brokers side by side: each picks a free admin port.
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&self.data_dir)
        .args(["--config", "group.initial.rebalance.delay.ms=0"])
        .env("WEIR_LOG", "warn")
        .stdin(Stdio::null());
        for setting in &self.extra {
            cmd.args(["--config", setting]);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", weir_bin().display()));
        self.child = Some(child);
        let addr: SocketAddr = listen.parse().expect("address");
        wait_until(
            Duration::from_secs(30),
            "the broker to accept connections",
            || {
                if let Some(child) = self.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("broker exited during start: {status}");
                    }
                }
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            },
        );
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(
                            status.success(),
                            "broker exited with {status} after SIGTERM"
                        );
                        return;
                    }
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        panic!("broker did not stop within 20 s of SIGTERM");
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Starts again on the same data directory and port.
    pub fn restart(&mut self) {
        self.spawn();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
