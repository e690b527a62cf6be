//! `ringbolt serve` started as a newcomer starts it: relative data dirs, a second broker on the
//! same dir or port, requests racing the startup, unwritable dirs, too few file descriptors, and
//! startup errors that name what failed.

mod server_util;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::list_offsets_response::ListOffsetsResponse;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_test_client::requests::{list_offsets_request, metadata_request};
use server_util::process::spawn_listening;
use server_util::*;

fn ringbolt(cwd: &Path, args: &[&str]) -> Command {
    let mut c = process::ringbolt();
    c.current_dir(cwd).arg("serve").args(args);
    c
}

fn sigterm_and_wait(child: Child) {
    process::sigterm_and_wait(child);
}

/// Runs a broker that is expected to refuse to start; returns its output (bounded in time).
fn refused(mut cmd: Command) -> (Output, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    process::wait_exit(&mut child, Duration::from_secs(10)).expect("broker did not exit");
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "must exit non-zero: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

fn produce_and_fetch(addr: SocketAddr, topic: &str) {
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic(topic, 2, &[], 5).topics[0].error_code, 0);
    let b = batch("readme", 3, 1);
    for p in 0..2 {
        assert_eq!(
            c.produce(topic, p, -1, b.clone(), 9),
            (0, 0),
            "partition {p}"
        );
        let (err, hw, recs) = c.fetch(topic, p, 0, 12);
        assert_eq!((err, hw), (0, 3));
        assert_eq!(normalize(&split_batches(&recs)[0].1), normalize(&b));
    }
}

/// The README's command: no `--data-dir`, so `./data` relative to the working directory.
#[test]
fn default_and_relative_data_dirs_work() {
    let cwd = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_listening(ringbolt(cwd.path(), &["--listen", "127.0.0.1:0"]));
    produce_and_fetch(addr, "web_log");
    assert!(cwd.path().join("data/web_log-1").is_dir());
    sigterm_and_wait(child);
    // Restarted, the same relative dir still holds the records.
    let (child, addr) = spawn_listening(ringbolt(cwd.path(), &["--listen", "127.0.0.1:0"]));
    let mut c = Client::connect(addr);
    assert_eq!(c.fetch("web_log", 1, 0, 12).1, 3);
    sigterm_and_wait(child);

    let (child, addr) = spawn_listening(ringbolt(
        cwd.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "rel/d"],
    ));
    produce_and_fetch(addr, "t");
    assert!(cwd.path().join("rel/d/t-0").is_dir());
    sigterm_and_wait(child);
}

#[test]
fn second_broker_on_the_same_data_dir_exits() {
    let cwd = tempfile::tempdir().unwrap();
    let (first, addr) = spawn_listening(ringbolt(cwd.path(), &["--listen", "127.0.0.1:0"]));
    let t0 = Instant::now();
    let (_, err) = refused(ringbolt(cwd.path(), &["--listen", "127.0.0.1:0"]));
    assert!(t0.elapsed() < Duration::from_secs(5), "exits at once");
    let dir = std::fs::canonicalize(cwd.path().join("data")).unwrap();
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    // The first broker is untouched and still serves.
    produce_and_fetch(addr, "still");
    sigterm_and_wait(first);
    // Once it is gone (even by kill -9 the kernel drops the lock), the dir can be used again.
    let (again, _) = spawn_listening(ringbolt(cwd.path(), &["--listen", "127.0.0.1:0"]));
    let mut again = again;
    again.kill().unwrap();
    again.wait().unwrap();
    let (last, _) = spawn_listening(ringbolt(cwd.path(), &["--listen", "127.0.0.1:0"]));
    sigterm_and_wait(last);
}

#[test]
fn second_broker_on_the_same_port_exits() {
    let cwd = tempfile::tempdir().unwrap();
    let (first, addr) = spawn_listening(ringbolt(cwd.path(), &["--listen", "127.0.0.1:0"]));
    let listen = addr.to_string();
    let (_, err) = refused(ringbolt(
        cwd.path(),
        &["--listen", &listen, "--data-dir", "other"],
    ));
    assert!(err.contains(&listen), "{err}");
    assert!(err.contains("already in use"), "{err}");
    assert!(!cwd.path().join("other").exists(), "nothing created");
    // Every new connection still reaches the first broker.
    for i in 0..20 {
        produce_and_fetch(addr, &format!("mine{i}"));
    }
    sigterm_and_wait(first);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects as soon as the port takes connections (before the "listening" line) and asks for the
/// offsets of every partition: none may be unknown because its shard was still recovering.
#[test]
fn no_request_is_served_before_every_shard_recovered() {
    const PARTITIONS: i32 = 512;
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let args = ["--listen", listen.as_str(), "--shards", "2"];
    let (child, addr) = spawn_listening(ringbolt(cwd.path(), &args));
    let mut c = Client::connect(addr);
    assert_eq!(
        c.create_topic("many", PARTITIONS, &[], 5).topics[0].error_code,
        0
    );
    drop(c);
    sigterm_and_wait(child);
    let req = list_offsets_request(tn("many"), (0..PARTITIONS).map(|p| (p, -1)));
    for round in 0..4 {
        let child = ringbolt(cwd.path(), &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        // Several connections, so that every shard's listener gets some (SO_REUSEPORT hashing).
        let mut unknown = 0;
        let mut answered = 0;
        while answered < 8 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "broker never answered"
            );
            let Ok(stream) = std::net::TcpStream::connect(addr) else {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            };
            let mut c = Client::from_stream(stream);
            let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req);
            unknown += r.topics[0]
                .partitions
                .iter()
                .filter(|p| p.error_code != 0)
                .count();
            answered += 1;
        }
        sigterm_and_wait(child);
        assert_eq!(
            unknown, 0,
            "round {round}: partitions answered with an error"
        );
    }
}

/// A data dir the broker's user cannot write is refused at startup, naming the dir. Needs a user
/// that the directory's permissions apply to: as root the child runs as `nobody`.
#[test]
fn unwritable_data_dir_is_refused_at_startup() {
    use std::os::unix::fs::PermissionsExt;
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = ringbolt(
        cwd.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.to_str().unwrap(),
        ],
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let nobody = 65534;
        // The binary must be reachable by `nobody`; skip (loudly) where the checkout is not.
        let probe = process::ringbolt()
            .arg("--version")
            .uid(nobody)
            .gid(nobody)
            .output();
        if !probe.is_ok_and(|o| o.status.success()) {
            eprintln!("SKIPPED: the test binary is not executable by uid {nobody}");
            return;
        }
        cmd.uid(nobody).gid(nobody);
    }
    let (_, err) = refused(cmd);
    assert!(err.contains("not writable"), "{err}");
    assert!(err.contains(&dir.display().to_string()), "{err}");
}

/// With too few file descriptors for a topic's partitions, CreateTopics reports an error for the
/// topic (and does not leave it half created) instead of success.
#[test]
fn create_topics_reports_partitions_that_cannot_be_opened() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = ringbolt(cwd.path(), &["--listen", "127.0.0.1:0", "--shards", "2"]);
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 200,
                rlim_max: 200,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let (child, addr) = spawn_listening(cmd);
    let mut c = Client::connect(addr);
    let r = c.create_topic("toomany", 400, &[], 5);
    let t = &r.topics[0];
    assert_ne!(t.error_code, 0, "CreateTopics must not report success");
    let msg = t
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(msg.contains("could not be opened"), "{msg}");
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &metadata_request(&["toomany"]).with_allow_auto_topic_creation(false),
    );
    assert_eq!(md.topics[0].error_code, 3, "rolled back: unknown topic");
    assert!(
        std::fs::read_dir(cwd.path().join("data"))
            .unwrap()
            .all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("toomany-")),
        "no partition dirs left behind"
    );
    // The broker keeps serving what fits.
    produce_and_fetch(addr, "fits");
    sigterm_and_wait(child);
}

#[test]
fn startup_errors_name_what_failed() {
    let cwd = tempfile::tempdir().unwrap();
    let (_, err) = refused(ringbolt(cwd.path(), &["--listen", "notanaddr"]));
    assert!(
        err.contains("--listen") && err.contains("notanaddr"),
        "{err}"
    );

    std::fs::write(cwd.path().join("bad.toml"), "listeners = \"nohost\"\n").unwrap();
    let (_, err) = refused(ringbolt(cwd.path(), &["--config", "bad.toml"]));
    assert!(
        err.contains("bad.toml") && err.contains("listeners"),
        "{err}"
    );

    std::fs::write(cwd.path().join("syntax.toml"), "num.partitions = x\n").unwrap();
    let (_, err) = refused(ringbolt(cwd.path(), &["--config", "syntax.toml"]));
    assert!(err.contains("syntax.toml"), "{err}");

    let (_, err) = refused(ringbolt(cwd.path(), &["--config", "missing.toml"]));
    assert!(err.contains("missing.toml"), "{err}");

    std::fs::write(cwd.path().join("file"), "x").unwrap();
    let (_, err) = refused(ringbolt(
        cwd.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "file"],
    ));
    assert!(
        err.contains("file") && err.contains("not a directory"),
        "{err}"
    );

    let (_, err) = refused(ringbolt(
        cwd.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "file/sub"],
    ));
    assert!(err.contains("file/sub"), "{err}");

    // A metadata file that cannot be read names itself.
    std::fs::create_dir(cwd.path().join("d")).unwrap();
    std::fs::write(cwd.path().join("d/ringbolt-metadata.json"), "{").unwrap();
    let (_, err) = refused(ringbolt(
        cwd.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "d"],
    ));
    assert!(err.contains("ringbolt-metadata.json"), "{err}");
}
