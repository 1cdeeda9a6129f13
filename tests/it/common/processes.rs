//! Real servers the tests start as child processes (grpcio, uvicorn, node): the Python
//! the tests use, and a server that prints its port first and is stopped when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The Python the tests use (`CLERK_GATEWAY_TEST_PYTHON`, else `python3`), and whether it
/// can import `modules` (`"fastapi, uvicorn"`).
pub fn test_python(modules: &str) -> (String, bool) {
    let python = std::env::var("CLERK_GATEWAY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let imports = Command::new(&python).args(["-c", &format!("import {modules}")]).output();
    let ok = imports.is_ok_and(|o| o.status.success());
    (python, ok)
}

/// A server in a child process; its stdin is held open (closing it tells a server to stop)
/// and it is killed when dropped.
pub struct ChildServer {
    child: Child,
    /// Where it listens, on loopback.
    pub addr: SocketAddr,
}

impl ChildServer {
    /// Starts `command` and reads the port from the first line it prints (the line's last
    /// `:`-separated part: `8000` or `listening on http://127.0.0.1:8000`).
    pub fn start(mut command: Command) -> ChildServer {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("the server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        let port = port.unwrap_or_else(|| panic!("the server printed its port, not {line:?}"));
        ChildServer { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
