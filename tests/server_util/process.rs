//! The real `ringbolt serve` process: build its command line, start it and learn its address from
//! the "listening" line it prints on stdout, stop it with SIGTERM within a bound.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `ringbolt` binary of this build.
pub(crate) fn ringbolt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringbolt"))
}

/// `ringbolt serve --listen 127.0.0.1:0 --shards 2 --data-dir <data>`.
pub(crate) fn serve(data: &Path) -> Command {
    let mut c = ringbolt();
    c.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--data-dir",
    ])
    .arg(data);
    c
}

/// The address at the end of the broker's "listening" line.
pub(crate) fn listening_addr(line: &str) -> Option<SocketAddr> {
    line.trim().rsplit(' ').next().and_then(|a| a.parse().ok())
}

/// Starts `cmd` and waits for its "listening" line; returns the child and its address. Its
/// stderr is drained all along (a broker blocked on a full stderr pipe would look like a hung
/// broker) and shown if it does not start.
pub(crate) fn spawn_listening(mut cmd: Command) -> (Child, SocketAddr) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    match listening_addr(&line) {
        Some(a) => (child, a),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("broker did not start: {line:?}\n{}", log.join().unwrap());
        }
    }
}

/// Sends SIGTERM to the child.
pub(crate) fn sigterm(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// Waits up to `limit` for the child to exit and returns its status; kills and reaps it and
/// returns `None` when it does not exit in time.
pub(crate) fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGTERM, then the exit status; panics when the broker has not stopped within 15 s.
pub(crate) fn sigterm_and_wait(mut child: Child) -> ExitStatus {
    sigterm(&child);
    wait_exit(&mut child, Duration::from_secs(15)).expect("broker did not stop on SIGTERM")
}
