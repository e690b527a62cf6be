//! What `spawn_broker` checks before any shard starts: the data directory (resolved once, writable,
//! locked by this process alone) and the listen address (not already served by another process).
//!
//! # One broker per data directory
//!
//! Two brokers on one directory would both run recovery on the same active segments (each
//! truncating what the other had just written) and both acknowledge acks=all writes to the same
//! partition files; nothing on disk could be trusted afterwards. As Kafka does (`.lock` in every
//! log dir), the broker takes an exclusive `flock(2)` on `<data_dir>/.lock` for its whole life and
//! writes its pid into the file, so a second broker can say who holds the directory. The lock
//! belongs to the open file description, so it is released by the kernel when the process dies
//! (kill -9 included): there is no stale lock to clean up, and the pid in the file is only a hint.
//!
//! # One broker per address
//!
//! Every shard binds the listen address with SO_REUSEPORT, and the kernel lets any process of the
//! same user join such a group: a second broker would silently take about half of the new
//! connections. Before the shards bind, [`check_address_free`] looks for a socket in LISTEN state
//! on an overlapping address in the kernel's socket tables (`/proc/net/tcp{,6}`, this network
//! namespace) and refuses to start if there is one. Two brokers started in the same millisecond
//! on different data dirs could still both pass the check; closing that window would need the
//! shards to share one listening socket, which gives up the kernel's per-shard connection
//! spreading.
//!
//! # Relative paths
//!
//! The data directory is made absolute once, here ([`std::fs::canonicalize`]), and every later
//! path is built from that. glommio's `Directory::open` submits an io_uring `openat` with the
//! directory descriptor -1 instead of `AT_FDCWD`: an absolute path ignores it, a relative one
//! fails with EBADF, which is how the relative default `./data` used to fail at the first produce.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A startup check that failed; the message names the path or address and what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data dir {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "data dir {path} is in use by another broker{holder} (its lock file {lock} is held); \
         stop that broker or choose another --data-dir"
    )]
    Locked {
        path: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    #[error(
        "listen address {addr} is already in use by another process; stop it or choose \
         another --listen / listeners"
    )]
    AddressInUse { addr: SocketAddr },
    #[error("listen address {addr}: {source}")]
    Address {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Name of the lock file inside the data directory (Kafka's name).
pub const LOCK_FILE: &str = ".lock";

/// The locked data directory; the lock is held until this is dropped (or the process ends).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// The absolute path every other path of the broker is built from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `dir` if needed, makes it absolute, proves it writable and locks it for this process.
pub fn lock_data_dir(dir: &Path) -> Result<DataDir, StartupError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| StartupError::Io { what, path, source }
    };
    std::fs::create_dir_all(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => StartupError::NotADirectory { path: dir.into() },
        _ => io("creating data dir", dir)(e),
    })?;
    let path = std::fs::canonicalize(dir).map_err(io("resolving data dir", dir))?;
    if !path.is_dir() {
        return Err(StartupError::NotADirectory { path });
    }
    let lock_path = path.join(LOCK_FILE);
    // Opening for write with O_CREAT is also the writability check: a directory the broker cannot
    // create files in fails here, with its name, instead of at the first produce.
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io("data dir is not writable: creating", &lock_path))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io("locking", &lock_path)(e));
        }
        let mut text = String::new();
        let _ = lock.read_to_string(&mut text);
        let holder = match text.trim().parse::<u32>() {
            Ok(pid) => format!(" (pid {pid})"),
            Err(_) => String::new(),
        };
        return Err(StartupError::Locked {
            path,
            lock: lock_path,
            holder,
        });
    }
    let write_pid = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_all()
    };
    write_pid(&mut lock).map_err(io("writing", &lock_path))?;
    Ok(DataDir { path, _lock: lock })
}

/// Fails when another socket already listens on `addr` (see the module docs). Port 0 always passes.
pub fn check_address_free(addr: SocketAddr) -> Result<(), StartupError> {
    if addr.port() == 0 {
        return Ok(());
    }
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = match std::fs::read_to_string(table) {
            Ok(t) => t,
            // No IPv6 in this kernel: nothing can listen there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(StartupError::Io {
                    what: "reading",
                    path: table.into(),
                    source,
                });
            }
        };
        if listeners(&text, v6).any(|l| overlaps(l, addr)) {
            return Err(StartupError::AddressInUse { addr });
        }
    }
    Ok(())
}

/// The local addresses of the LISTEN sockets in a `/proc/net/tcp{,6}` table.
///
/// Why the table and not a trial bind: glommio's listeners set SO_REUSEPORT but not
/// SO_REUSEADDR, so the accepted connections of a broker that just stopped linger in TIME_WAIT
/// without SO_REUSEADDR, and any trial bind without SO_REUSEPORT fails on them for a minute after
/// every restart. Only a socket in LISTEN state means another process serves the address.
fn listeners(table: &str, v6: bool) -> impl Iterator<Item = SocketAddr> + '_ {
    table.lines().skip(1).filter_map(move |line| {
        let mut cols = line.split_whitespace();
        let local = cols.nth(1)?;
        let state = cols.nth(1)?;
        if state != "0A" {
            return None;
        }
        let (ip, port) = local.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        // Each 32-bit word of the address is printed as a number in host byte order, so its
        // bytes in memory (`to_ne_bytes`) are the address bytes in network order.
        let mut bytes = Vec::with_capacity(16);
        for i in 0..ip.len() / 8 {
            let w = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
            bytes.extend_from_slice(&w.to_ne_bytes());
        }
        let ip: std::net::IpAddr = match (v6, bytes.len()) {
            (false, 4) => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&bytes[..]).ok()?).into(),
            (true, 16) => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[..]).ok()?).into(),
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    })
}

/// Whether a listener on `l` takes connections meant for `addr`: same port, and the same address,
/// or either one a wildcard (an IPv6 wildcard listener is dual-stack by default).
fn overlaps(l: SocketAddr, addr: SocketAddr) -> bool {
    use std::net::IpAddr;
    if l.port() != addr.port() {
        return false;
    }
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    };
    let (a, b) = (l.ip(), addr.ip());
    a.is_unspecified()
        || b.is_unspecified()
        || a == b
        || matches!((v4(a), v4(b)), (Some(x), Some(y)) if x == y)
}

/// Raises the soft open-files limit to the hard one: every partition keeps its active segment's
/// three files open and every connection is a descriptor, and the soft limit some shells start
/// with (1,024) is far below what a broker with a few hundred partitions needs. Returns the limit
/// now in force.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a properly sized struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

/// Descriptors a partition holds open: its active segment's `.log`, `.index` and `.timeindex`.
const FDS_PER_PARTITION: u64 = 3;
/// Room for connections, io_uring rings and the rest, on top of the partitions.
const FDS_HEADROOM: u64 = 1024;

/// Logs a warning when the open-files limit is too low for the partitions the broker will open
/// (their opens fail with EMFILE, and CreateTopics is refused once it runs out).
pub fn warn_if_few_descriptors(partitions: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let needed = partitions * FDS_PER_PARTITION + FDS_HEADROOM;
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < needed {
        tracing::warn!(
            limit = lim.rlim_cur,
            partitions,
            needed,
            "the open-files limit (RLIMIT_NOFILE) is low for this many partitions: raise it \
             (LimitNOFILE in tuning/ringbolt.service, `ulimit -n`); `ringbolt tune check` reports it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_data_dir(&dir.path().join("d")).unwrap();
        assert!(first.path().is_absolute());
        let err = lock_data_dir(&dir.path().join("d")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(&first.path().display().to_string()), "{msg}");
        drop(first);
        lock_data_dir(&dir.path().join("d")).unwrap();
    }

    #[test]
    fn a_file_is_not_a_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let msg = lock_data_dir(&f).unwrap_err().to_string();
        assert!(
            msg.contains("is not a directory") && msg.contains("/f"),
            "{msg}"
        );
    }

    #[test]
    fn a_listening_address_is_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let msg = check_address_free(addr).unwrap_err().to_string();
        assert!(msg.contains(&addr.to_string()), "{msg}");
        drop(l);
        check_address_free(addr).unwrap();
    }

    #[test]
    fn proc_net_tcp_rows_parse() {
        let v4 = "  sl  local_address rem_address   st\n   0: 0100007F:2384 00000000:0000 0A 0\n   1: 0100007F:2384 0100007F:9C40 06 0\n   2: 00000000:1F90 00000000:0000 0A 0\n";
        let got: Vec<SocketAddr> = listeners(v4, false).collect();
        assert_eq!(
            got,
            [
                "127.0.0.1:9092".parse().unwrap(),
                "0.0.0.0:8080".parse().unwrap()
            ]
        );
        let v6 = "  sl  local_address rem_address st\n   0: 00000000000000000000000001000000:2384 00000000000000000000000000000000:0000 0A 0\n";
        let got: Vec<SocketAddr> = listeners(v6, true).collect();
        assert_eq!(got, ["[::1]:9092".parse::<SocketAddr>().unwrap()]);
        let a: SocketAddr = "127.0.0.1:9092".parse().unwrap();
        assert!(overlaps("0.0.0.0:9092".parse().unwrap(), a));
        assert!(overlaps("[::]:9092".parse().unwrap(), a));
        assert!(overlaps("[::ffff:127.0.0.1]:9092".parse().unwrap(), a));
        assert!(!overlaps("127.0.0.2:9092".parse().unwrap(), a));
        assert!(!overlaps("127.0.0.1:9093".parse().unwrap(), a));
        assert!(overlaps(a, "0.0.0.0:9092".parse().unwrap()));
    }
}
