//! The loopback engine of the push tests: `tests/receivers/receiver.py`, which decodes what it
//! receives with code generated from the engines' own protocol definitions, not mapprof's.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/receivers");

/// The Python of the venv `make setup` makes (target/receivers-venv).
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/receivers-venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `make receivers` (part of `make test`)",
        venv.display()
    );
    venv
}

pub(crate) struct Receiver {
    child: Option<Child>,
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    pub(crate) fn start() -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let mut receiver = Receiver {
            child: None,
            port: 0,
            log,
            _dir: dir,
        };
        receiver.restart();
        receiver
    }

    /// Starts the receiver (again, on the same port once it has one).
    pub(crate) fn restart(&mut self) {
        let port_file = self._dir.path().join("port");
        let _ = std::fs::remove_file(&port_file);
        let mut command = Command::new(python());
        command
            .arg(format!("{DIR}/receiver.py"))
            .arg(&self.log)
            .arg(&port_file);
        if self.port != 0 {
            command.arg(self.port.to_string());
        }
        self.child = Some(command.spawn().expect("start receiver.py"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !port_file.exists() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("receiver.py exited: {status}");
            }
            assert!(Instant::now() < deadline, "receiver.py did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.port = std::fs::read_to_string(&port_file)
            .unwrap()
            .parse()
            .unwrap();
    }

    /// Stops it: the engine is absent.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Makes it answer `mode` from now on (see receiver.py).
    pub(crate) fn set_mode(&self, mode: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "POST /__mode HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{mode}",
            mode.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    /// Every request received so far, as logged.
    pub(crate) fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}
