//! `ringbolt tune check` / `tune apply --dry-run` on the machine running the tests: whatever the
//! host looks like (VM, container, bare metal), the report names every check and the exit status
//! is 0 or 1, never a crash. Nothing here writes to the host.

use std::process::Command;

use ringbolt::tune::checks::CHECKS;

fn ringbolt(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringbolt"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn check_names_every_check_on_this_machine() {
    let (code, out, err) = ringbolt(&["tune", "check"]);
    assert!(code == 0 || code == 1, "exit {code}\n{out}\n{err}");
    for (name, _) in CHECKS {
        assert!(
            out.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{out}"
        );
    }
    assert!(out.contains(" ok, "), "{out}");
    // The exit status is the verdict: 1 exactly when a row says CHANGE.
    assert_eq!(code == 1, out.contains(" CHANGE "), "{out}");
}

#[test]
fn check_json_with_data_dir_and_shards() {
    let data = tempfile::tempdir().unwrap();
    let (code, out, err) = ringbolt(&[
        "tune",
        "check",
        "--json",
        "--shards",
        "1",
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    assert!(code == 0 || code == 1, "exit {code}\n{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let findings = v.as_array().unwrap();
    for (name, _) in CHECKS {
        let f = findings
            .iter()
            .find(|f| f["check"] == *name)
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"));
        let status = f["status"].as_str().unwrap();
        assert!(["ok", "change", "unknown"].contains(&status), "{f}");
        assert!(!f["current"].as_str().unwrap().is_empty(), "{f}");
    }
    // This process's memlock limit is readable: never unknown.
    let memlock = findings
        .iter()
        .find(|f| f["check"] == "limit.memlock")
        .unwrap();
    assert_ne!(memlock["status"], "unknown", "{memlock}");
}

#[test]
fn apply_dry_run_lists_writes_and_changes_nothing() {
    let (_, before, _) = ringbolt(&["tune", "check", "--json"]);
    let (code, out, err) = ringbolt(&["tune", "apply", "--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("write(s) planned"), "{out}");
    assert!(!out.contains("wrote "), "{out}");
    let (_, after, _) = ringbolt(&["tune", "check", "--json"]);
    let statuses = |s: &str| -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| (f["check"].to_string(), f["status"].to_string()))
            .collect()
    };
    assert_eq!(statuses(&before), statuses(&after));
}

#[test]
fn missing_root_reports_unknown() {
    let empty = tempfile::tempdir().unwrap();
    let (code, out, err) = ringbolt(&["tune", "check", "--root", empty.path().to_str().unwrap()]);
    assert!(code == 0 || code == 1, "{out}\n{err}");
    for (name, _) in CHECKS {
        assert!(out.contains(name), "{name} missing:\n{out}");
    }
    assert!(out.contains("unknown"), "{out}");
    let (code, _, _) = ringbolt(&[
        "tune",
        "check",
        "--strict",
        "--root",
        empty.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "--strict fails on unknowns");
}

/// `serve` under a locked-memory limit io_uring cannot work with: a clear error at once, not a
/// shard start-up timeout.
#[test]
fn serve_with_low_memlock_fails_fast_with_a_hint() {
    use std::os::unix::process::CommandExt;
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringbolt"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--data-dir",
    ])
    .arg(data.path().join("data"));
    // SAFETY: setrlimit is async-signal-safe; it only lowers the child's own limit.
    unsafe {
        cmd.pre_exec(|| {
            let r = libc::rlimit {
                rlim_cur: 256 << 10,
                rlim_max: 256 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t0 = std::time::Instant::now();
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("RLIMIT_MEMLOCK") && err.contains("ulimit -l unlimited"),
        "{err}"
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t0.elapsed()
    );
}

/// `tune apply` (not a dry run) against a fake root: writes the recommended values there, prints
/// each change with the old value, and a following `check` agrees.
#[test]
fn apply_writes_into_a_fake_root() {
    let root = tempfile::tempdir().unwrap();
    let put = |p: &str, v: &str| {
        let p = root.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{v}\n")).unwrap();
    };
    put("proc/sys/vm/swappiness", "60");
    put("proc/meminfo", "SwapTotal: 1024 kB");
    put("proc/sys/fs/aio-max-nr", "65536");
    put(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never",
    );
    let r = root.path().to_str().unwrap();
    let (code, out, err) = ringbolt(&["tune", "apply", "--root", r]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("wrote \"1\"") && out.contains("(was \"60\")"),
        "{out}"
    );
    assert!(out.contains("wrote \"madvise\""), "{out}");
    let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
    assert_eq!(read("proc/sys/vm/swappiness"), "1\n");
    assert_eq!(read("proc/sys/fs/aio-max-nr"), "1048576\n");
    let (_, out, _) = ringbolt(&["tune", "check", "--json", "--root", r]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for name in ["vm.swappiness", "fs.aio-max-nr", "vm.transparent_hugepage"] {
        let f = v
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == name)
            .unwrap();
        assert_eq!(f["status"], "ok", "{f}");
    }
}
