//! The host as the checks see it: a root directory holding `proc/` and `sys/` (`/` in production, a
//! fake tree in tests) and the process resource limits. Every read returns `Option`/`Result` — a
//! missing or unreadable file is "unknown", never a panic — plus the small text parsers the kernel's
//! formats need (CPU lists, `[active] other` selector files, `/proc/interrupts`).

use std::path::{Path, PathBuf};

/// Soft and hard value of one resource limit; `u64::MAX` stands for `RLIM_INFINITY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

/// Resource limits of the process that will run the broker (here: the one running the check).
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub memlock: Option<Limit>,
    pub nofile: Option<Limit>,
    /// The process holds CAP_IPC_LOCK: locked memory is then not charged against RLIMIT_MEMLOCK
    /// (io_uring buffer registration included), only glommio's own 512 KiB start check applies.
    pub ipc_lock: bool,
}

impl Limits {
    /// This process's limits from getrlimit(2).
    pub fn current() -> Limits {
        Limits {
            memlock: getrlimit(libc::RLIMIT_MEMLOCK),
            nofile: getrlimit(libc::RLIMIT_NOFILE),
            ipc_lock: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| cap_eff(&s))
                .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0),
        }
    }
}

/// Capability number of CAP_IPC_LOCK (linux/capability.h).
pub const CAP_IPC_LOCK: u32 = 14;

/// The effective capability mask (`CapEff:` of `/proc/PID/status`).
pub fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn getrlimit(resource: libc::__rlimit_resource_t) -> Option<Limit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; no other memory is touched.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 {
        return None;
    }
    let conv = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            v
        }
    };
    Some(Limit {
        soft: conv(r.rlim_cur),
        hard: conv(r.rlim_max),
    })
}

/// Where the checks read from.
#[derive(Clone, Debug)]
pub struct Host {
    root: PathBuf,
    pub limits: Limits,
}

impl Host {
    /// The real machine: `/` and this process's limits.
    pub fn live() -> Host {
        Host::at("/", Limits::current())
    }

    /// A tree laid out like `/` (`proc/sys/...`, `sys/block/...`), with the given limits.
    pub fn at(root: impl Into<PathBuf>, limits: Limits) -> Host {
        Host {
            root: root.into(),
            limits,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `p` (an absolute path such as `/proc/sys/vm/swappiness`) under the root.
    pub fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// Trimmed contents of `p`, or why it could not be read.
    pub fn read(&self, p: &str) -> Result<String, String> {
        read_trim(&self.path(p))
    }

    pub fn read_u64(&self, p: &str) -> Result<u64, String> {
        let s = self.read(p)?;
        s.parse().map_err(|_| format!("{p}: not a number: {s:?}"))
    }

    /// Sorted entry names of directory `p`; empty when it does not exist.
    pub fn list(&self, p: &str) -> Vec<String> {
        list_dir(&self.path(p))
    }

    pub fn exists(&self, p: &str) -> bool {
        self.path(p).exists()
    }
}

pub fn read_trim(p: &Path) -> Result<String, String> {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", p.display()))
}

pub fn list_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|a| natural_key(a));
    v
}

/// Sorts `cpu2` before `cpu10`.
fn natural_key(s: &str) -> (String, u64) {
    let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (head, tail) = s.split_at(s.len() - digits);
    (head.to_string(), tail.parse().unwrap_or(0))
}

/// Parses a kernel CPU list (`0-3,5,7-8`). `None` on malformed input.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 65_536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

/// Formats CPUs as a kernel CPU list (`0-3,5`).
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut v = cpus.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// A selector file such as `none [mq-deadline] kyber` or `always [madvise] never`:
/// (the bracketed active choice, every choice).
pub fn parse_selector(s: &str) -> Option<(String, Vec<String>)> {
    let mut active = None;
    let mut all = Vec::new();
    for w in s.split_whitespace() {
        match w.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
            Some(a) => {
                active = Some(a.to_string());
                all.push(a.to_string());
            }
            None => all.push(w.to_string()),
        }
    }
    // A file with a single choice may print it without brackets (e.g. a scheduler of `none`).
    match (active, all.len()) {
        (Some(a), _) => Some((a, all)),
        (None, 1) => Some((all[0].clone(), all)),
        _ => None,
    }
}

/// Device interrupts from `/proc/interrupts`: (IRQ number, action name). Per-CPU lines (`LOC:`,
/// `NMI:`, ...) are skipped.
pub fn parse_interrupts(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let Some((irq, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Ok(irq) = irq.parse::<u32>() else {
            continue;
        };
        // Counts, then chip, hw irq, trigger, then the action name(s): the name is the last word.
        if let Some(name) = rest.split_whitespace().last() {
            out.push((irq, name.to_string()));
        }
    }
    out
}

/// Whether an interrupt belongs to storage or network I/O queues (the ones worth moving off the
/// shard cores), judged by the driver's action name.
pub fn is_io_irq(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.contains("config") || n.contains("async") {
        return false;
    }
    const PATTERNS: [&str; 14] = [
        "nvme", "-input.", "-output.", "-req.", "txrx", "-rx-", "-tx-", "mlx", "ena-", "bnxt",
        "i40e", "ice-", "ixgbe", "igb",
    ];
    PATTERNS.iter().any(|p| n.contains(p))
}

/// Formats a byte count for people (`512 KiB`, `unlimited`).
pub fn fmt_bytes(v: u64) -> String {
    if v == u64::MAX {
        return "unlimited".into();
    }
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (u, n) in UNITS {
        if v >= n && v.is_multiple_of(n) {
            return format!("{} {u}", v / n);
        }
    }
    format!("{v} B")
}

pub fn fmt_count(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}
