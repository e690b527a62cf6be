//! The host checks: each reads current values through [`Host`], compares them with what Ringbolt
//! wants, and proposes fixes. A check always yields at least one [`Finding`] (so every check is
//! named in the report), and a value it cannot read makes the finding `Unknown`, never an error.
//!
//! Why each recommendation holds is written next to it (`why`), and in `tuning/README.md` at length.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::host::{
    Host, fmt_bytes, fmt_count, format_cpu_list, is_io_irq, parse_cpu_list, parse_interrupts,
    parse_selector,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Change,
    Unknown,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Change => "CHANGE",
            Status::Unknown => "unknown",
        }
    }
}

/// What `tune apply` does about a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fix {
    /// Write `value` into a sysfs/procfs file (a path under the host root).
    Write { path: PathBuf, value: String },
    /// Something `apply` cannot do at run time (limits of another process, NIC channels, boot
    /// parameters): printed as advice.
    Manual(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    /// What was looked at: `all`, a disk, a NIC.
    pub subject: String,
    pub status: Status,
    pub current: String,
    pub recommended: String,
    pub why: &'static str,
    pub fixes: Vec<Fix>,
}

/// What the checks know about the broker that will run here.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// `--shards` of the broker (default: one per online CPU).
    pub shards: Option<usize>,
    /// The broker's data directory: disk checks look at its device only.
    pub data_dir: Option<PathBuf>,
}

type CheckFn = fn(&Host, &Context, &'static str) -> Vec<Finding>;

/// Every check, in report order: (name, function).
pub const CHECKS: &[(&str, CheckFn)] = &[
    ("cpu.governor", cpu_governor),
    ("cpu.cstates", cpu_cstates),
    ("irq.affinity", irq_affinity),
    ("disk.scheduler", disk_scheduler),
    ("disk.nomerges", disk_nomerges),
    ("fs.aio-max-nr", aio_max_nr),
    ("limit.memlock", memlock),
    ("limit.nofile", nofile),
    ("net.core.somaxconn", somaxconn),
    ("net.ipv4.tcp_max_syn_backlog", syn_backlog),
    ("net.nic-queues", nic_queues),
    ("vm.transparent_hugepage", thp_enabled),
    ("vm.transparent_hugepage.defrag", thp_defrag),
    ("vm.swappiness", swappiness),
];

/// Runs every check.
pub fn run_all(host: &Host, ctx: &Context) -> Vec<Finding> {
    CHECKS
        .iter()
        .flat_map(|(name, f)| f(host, ctx, name))
        .collect()
}

fn finding(
    check: &'static str,
    status: Status,
    current: impl Into<String>,
    recommended: impl Into<String>,
    why: &'static str,
) -> Finding {
    Finding {
        check,
        subject: "all".into(),
        status,
        current: current.into(),
        recommended: recommended.into(),
        why,
        fixes: Vec::new(),
    }
}

fn unknown(check: &'static str, reason: String, recommended: &str, why: &'static str) -> Finding {
    finding(
        check,
        Status::Unknown,
        format!("unknown ({reason})"),
        recommended,
        why,
    )
}

/// Online CPUs (`/sys/devices/system/cpu/online`), else the `cpuN` directories.
pub fn online_cpus(host: &Host) -> Vec<usize> {
    if let Some(v) = host
        .read("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(&s))
        .filter(|v| !v.is_empty())
    {
        return v;
    }
    host.list("/sys/devices/system/cpu")
        .iter()
        .filter_map(|n| n.strip_prefix("cpu")?.parse().ok())
        .collect()
}

/// The cores shards run on: the broker pins shard i to the i-th allowed CPU, so with `--shards N`
/// the first N online CPUs (see `server::allowed_cpus`).
fn shard_cpus(host: &Host, ctx: &Context) -> (Vec<usize>, Vec<usize>) {
    let cpus = online_cpus(host);
    let n = ctx.shards.unwrap_or(cpus.len()).min(cpus.len());
    (cpus[..n].to_vec(), cpus[n..].to_vec())
}

/// Groups per-CPU values: `performance ×6, powersave ×2`.
fn summarize(values: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for v in values {
        match counts.iter_mut().find(|(k, _)| k == v) {
            Some((_, c)) => *c += 1,
            None => counts.push((v.clone(), 1)),
        }
    }
    counts
        .iter()
        .map(|(k, c)| format!("{k} ×{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const WHY_GOVERNOR: &str = "shards poll their rings; a power-saving governor lowers the clock between bursts and every \
     request then pays the ramp-up in latency";

fn cpu_governor(host: &Host, _: &Context, name: &'static str) -> Vec<Finding> {
    let want = "performance";
    let mut values = Vec::new();
    let mut fixes = Vec::new();
    for cpu in online_cpus(host) {
        let p = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor");
        if let Ok(g) = host.read(&p) {
            if g != want {
                fixes.push(Fix::Write {
                    path: host.path(&p),
                    value: want.into(),
                });
            }
            values.push(g);
        }
    }
    if values.is_empty() {
        return vec![unknown(
            name,
            "no cpufreq interface: a VM, or frequency managed by firmware".into(),
            want,
            WHY_GOVERNOR,
        )];
    }
    let status = if fixes.is_empty() {
        Status::Ok
    } else {
        Status::Change
    };
    let mut f = finding(name, status, summarize(&values), want, WHY_GOVERNOR);
    f.fixes = fixes;
    vec![f]
}

/// Idle states whose exit latency exceeds this are recommended off.
pub const MAX_CSTATE_LATENCY_US: u64 = 10;

const WHY_CSTATES: &str = "waking a core from a deep C-state takes tens to hundreds of µs, added to the latency of the \
     request that woke it; keep only states with an exit latency of at most 10 µs";

fn cpu_cstates(host: &Host, _: &Context, name: &'static str) -> Vec<Finding> {
    let want = format!("states with exit latency > {MAX_CSTATE_LATENCY_US} µs disabled");
    let mut seen = false;
    let mut enabled_deep = Vec::new();
    let mut fixes = Vec::new();
    for cpu in online_cpus(host) {
        let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cpuidle");
        for st in host.list(&dir) {
            if !st.starts_with("state") {
                continue;
            }
            let base = format!("{dir}/{st}");
            let (Ok(lat), Ok(dis)) = (
                host.read_u64(&format!("{base}/latency")),
                host.read(&format!("{base}/disable")),
            ) else {
                continue;
            };
            seen = true;
            if lat > MAX_CSTATE_LATENCY_US && dis == "0" {
                let sname = host
                    .read(&format!("{base}/name"))
                    .unwrap_or_else(|_| st.clone());
                enabled_deep.push(format!("{sname} ({lat} µs)"));
                fixes.push(Fix::Write {
                    path: host.path(&format!("{base}/disable")),
                    value: "1".into(),
                });
            }
        }
    }
    if !seen {
        return vec![unknown(
            name,
            "no cpuidle interface".into(),
            &want,
            WHY_CSTATES,
        )];
    }
    if fixes.is_empty() {
        return vec![finding(
            name,
            Status::Ok,
            "no deep state enabled",
            want,
            WHY_CSTATES,
        )];
    }
    let mut f = finding(
        name,
        Status::Change,
        format!("enabled: {}", summarize(&enabled_deep)),
        want,
        WHY_CSTATES,
    );
    fixes.push(Fix::Manual(
        "to keep it across reboots: kernel command line `processor.max_cstate=1 intel_idle.max_cstate=1` \
         (or the BIOS power profile)"
            .into(),
    ));
    f.fixes = fixes;
    vec![f]
}

const WHY_IRQ: &str = "a NIC or NVMe interrupt on a shard core preempts that shard's event loop; with a spare core \
     (run fewer shards than cores), steer device interrupts there and stop irqbalance from moving them back";

fn irq_affinity(host: &Host, ctx: &Context, name: &'static str) -> Vec<Finding> {
    let (shards, spare) = shard_cpus(host, ctx);
    let text = match host.read("/proc/interrupts") {
        Ok(t) => t,
        Err(e) => return vec![unknown(name, e, "device IRQs on non-shard cores", WHY_IRQ)],
    };
    if shards.is_empty() {
        return vec![unknown(
            name,
            "no online CPUs found".into(),
            "device IRQs on non-shard cores",
            WHY_IRQ,
        )];
    }
    if spare.is_empty() {
        return vec![finding(
            name,
            Status::Ok,
            format!(
                "every CPU ({}) runs a shard: no core to move IRQs to",
                format_cpu_list(&shards)
            ),
            "optional: `--shards N-1` and device IRQs on the spare core",
            WHY_IRQ,
        )];
    }
    let want = format!("device IRQs on CPUs {}", format_cpu_list(&spare));
    let mut on_shards = Vec::new();
    let mut fixes = Vec::new();
    let mut io_irqs = 0;
    for (irq, action) in parse_interrupts(&text) {
        if !is_io_irq(&action) {
            continue;
        }
        io_irqs += 1;
        let p = format!("/proc/irq/{irq}/smp_affinity_list");
        let Some(aff) = host.read(&p).ok().and_then(|s| parse_cpu_list(&s)) else {
            continue;
        };
        if aff.iter().any(|c| shards.contains(c)) {
            on_shards.push(format!("{irq}:{action}"));
            fixes.push(Fix::Write {
                path: host.path(&p),
                value: format_cpu_list(&spare),
            });
        }
    }
    if fixes.is_empty() {
        return vec![finding(
            name,
            Status::Ok,
            format!("{io_irqs} device IRQs, none on shard CPUs"),
            want,
            WHY_IRQ,
        )];
    }
    let shown: Vec<_> = on_shards.iter().take(4).cloned().collect();
    let more = on_shards.len().saturating_sub(shown.len());
    let mut f = finding(
        name,
        Status::Change,
        format!(
            "{} of {io_irqs} device IRQs may run on shard CPUs {} ({}{})",
            on_shards.len(),
            format_cpu_list(&shards),
            shown.join(" "),
            if more > 0 {
                format!(" +{more}")
            } else {
                String::new()
            }
        ),
        want,
        WHY_IRQ,
    );
    fixes.push(Fix::Manual(format!(
        "stop irqbalance, or set IRQBALANCE_BANNED_CPULIST={} in /etc/default/irqbalance; \
         kernel-managed NVMe queue IRQs refuse new affinity (EIO): that is expected",
        format_cpu_list(&shards)
    )));
    f.fixes = fixes;
    vec![f]
}

/// Block devices worth checking: the data dir's disk(s) when known, else every real disk.
fn disks(host: &Host, ctx: &Context) -> Result<Vec<String>, String> {
    if let Some(dir) = &ctx.data_dir {
        return data_dir_disks(host, dir);
    }
    let skip = ["loop", "ram", "zram", "sr", "fd", "nbd", "dm-", "md"];
    Ok(host
        .list("/sys/block")
        .into_iter()
        .filter(|d| !skip.iter().any(|s| d.starts_with(s)))
        .collect())
}

/// The whole disks under the filesystem holding `dir`: st_dev → `/sys/dev/block/MAJ:MIN` → the
/// partition's parent, or a device-mapper/md device's `slaves/`.
fn data_dir_disks(host: &Host, dir: &Path) -> Result<Vec<String>, String> {
    // A data dir the broker has yet to create lands on its nearest existing ancestor's filesystem.
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .ok_or_else(|| format!("{}: no existing ancestor", dir.display()))?;
    let md = std::fs::metadata(existing).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dev = md.dev();
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let link = host.path(&format!("/sys/dev/block/{maj}:{min}"));
    let real = std::fs::canonicalize(&link).map_err(|_| {
        format!(
            "{} is on device {maj}:{min}, which is not a block device (tmpfs, overlay, network fs?)",
            dir.display()
        )
    })?;
    let mut out = Vec::new();
    collect_disks(host, &real, &mut out, 0);
    if out.is_empty() {
        return Err(format!("no disk found for {}", real.display()));
    }
    Ok(out)
}

fn collect_disks(host: &Host, dev: &Path, out: &mut Vec<String>, depth: u32) {
    let name = dev
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let disk_dir = if dev.join("partition").exists() {
        match dev.parent() {
            Some(p) => p.to_path_buf(),
            None => return,
        }
    } else {
        dev.to_path_buf()
    };
    let slaves = super::host::list_dir(&disk_dir.join("slaves"));
    if !slaves.is_empty() && depth < 4 {
        for s in slaves {
            if let Ok(real) = std::fs::canonicalize(disk_dir.join("slaves").join(&s)) {
                collect_disks(host, &real, out, depth + 1);
            }
        }
        return;
    }
    let disk = disk_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(name);
    if host.exists(&format!("/sys/block/{disk}")) && !out.contains(&disk) {
        out.push(disk);
    }
}

fn rotational(host: &Host, disk: &str) -> bool {
    host.read(&format!("/sys/block/{disk}/queue/rotational"))
        .map(|s| s == "1")
        .unwrap_or(false)
}

const WHY_SCHED: &str = "NVMe and virtio disks queue in hardware; an I/O scheduler only adds CPU work and latency to \
     Ringbolt's large sequential O_DIRECT appends (spinning disks: mq-deadline)";

fn disk_scheduler(host: &Host, ctx: &Context, name: &'static str) -> Vec<Finding> {
    let disks = match disks(host, ctx) {
        Ok(d) if !d.is_empty() => d,
        Ok(_) => return vec![unknown(name, "no disks found".into(), "none", WHY_SCHED)],
        Err(e) => return vec![unknown(name, e, "none", WHY_SCHED)],
    };
    disks
        .into_iter()
        .map(|disk| {
            let want = if rotational(host, &disk) {
                "mq-deadline"
            } else {
                "none"
            };
            let p = format!("/sys/block/{disk}/queue/scheduler");
            let mut f = match host.read(&p).map(|s| (parse_selector(&s), s)) {
                Err(e) => unknown(name, e, want, WHY_SCHED),
                Ok((None, s)) => unknown(name, format!("unparsable {s:?}"), want, WHY_SCHED),
                Ok((Some((active, _)), _)) if active == want => {
                    finding(name, Status::Ok, active, want, WHY_SCHED)
                }
                Ok((Some((active, all)), _)) => {
                    let mut f = finding(name, Status::Change, active, want, WHY_SCHED);
                    f.fixes.push(if all.iter().any(|a| a == want) {
                        Fix::Write {
                            path: host.path(&p),
                            value: want.into(),
                        }
                    } else {
                        Fix::Manual(format!(
                            "{disk}: scheduler {want} not offered by the kernel"
                        ))
                    });
                    f
                }
            };
            f.subject = disk;
            f
        })
        .collect()
}

const WHY_NOMERGES: &str = "Ringbolt already submits large, aligned writes; the block layer's merge lookups cost CPU on \
     every request and never find anything to merge (2 = no merge attempts)";

fn disk_nomerges(host: &Host, ctx: &Context, name: &'static str) -> Vec<Finding> {
    let disks = match disks(host, ctx) {
        Ok(d) if !d.is_empty() => d,
        Ok(_) => return vec![unknown(name, "no disks found".into(), "2", WHY_NOMERGES)],
        Err(e) => return vec![unknown(name, e, "2", WHY_NOMERGES)],
    };
    disks
        .into_iter()
        .map(|disk| {
            let p = format!("/sys/block/{disk}/queue/nomerges");
            let mut f = if rotational(host, &disk) {
                let cur = host.read(&p).unwrap_or_else(|e| format!("unknown ({e})"));
                finding(
                    name,
                    Status::Ok,
                    cur,
                    "any (rotational disk: merging helps)",
                    WHY_NOMERGES,
                )
            } else {
                match host.read(&p) {
                    Err(e) => unknown(name, e, "2", WHY_NOMERGES),
                    Ok(v) if v == "2" => finding(name, Status::Ok, v, "2", WHY_NOMERGES),
                    Ok(v) => {
                        let mut f = finding(name, Status::Change, v, "2", WHY_NOMERGES);
                        f.fixes.push(Fix::Write {
                            path: host.path(&p),
                            value: "2".into(),
                        });
                        f
                    }
                }
            };
            f.subject = disk;
            f
        })
        .collect()
}

/// A sysctl that should be at least `min`.
fn sysctl_at_least(
    host: &Host,
    name: &'static str,
    file: &str,
    min: u64,
    why: &'static str,
) -> Vec<Finding> {
    let p = format!("/proc/sys/{file}");
    let want = format!(">= {min}");
    vec![match host.read_u64(&p) {
        Err(e) => unknown(name, e, &want, why),
        Ok(v) if v >= min => finding(name, Status::Ok, v.to_string(), want, why),
        Ok(v) => {
            let mut f = finding(name, Status::Change, v.to_string(), want, why);
            f.fixes.push(Fix::Write {
                path: host.path(&p),
                value: min.to_string(),
            });
            f
        }
    }]
}

const WHY_AIO: &str = "glommio itself uses io_uring, which does not consume AIO contexts, but Linux AIO users on the \
     same host (Seastar, databases, libaio tools) fail with EAGAIN at the low default; raising it costs nothing";

fn aio_max_nr(host: &Host, _: &Context, name: &'static str) -> Vec<Finding> {
    sysctl_at_least(host, name, "fs/aio-max-nr", 1_048_576, WHY_AIO)
}

const WHY_SOMAXCONN: &str = "caps every listen backlog (glommio asks for 1024); a connection storm (clients reconnecting \
     after a restart) overflows a short accept queue and clients see SYN retries of 1 s and more";

fn somaxconn(host: &Host, _: &Context, name: &'static str) -> Vec<Finding> {
    sysctl_at_least(host, name, "net/core/somaxconn", 4096, WHY_SOMAXCONN)
}

const WHY_SYN: &str =
    "half-open connections wait here before the accept queue; same reason as somaxconn";

fn syn_backlog(host: &Host, _: &Context, name: &'static str) -> Vec<Finding> {
    sysctl_at_least(host, name, "net/ipv4/tcp_max_syn_backlog", 4096, WHY_SYN)
}

const WHY_SWAP: &str = "a swapped-out page of an index or connection buffer turns a µs operation into a disk read; \
     1 keeps the kernel from swapping the broker while still allowing emergency swap";

fn swappiness(host: &Host, _: &Context, name: &'static str) -> Vec<Finding> {
    let p = "/proc/sys/vm/swappiness";
    let no_swap = host
        .read("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("SwapTotal:").map(|v| v.trim().to_string()))
        })
        .is_some_and(|v| v.starts_with("0 "));
    vec![match host.read_u64(p) {
        Err(e) => unknown(name, e, "<= 1", WHY_SWAP),
        Ok(v) if v <= 1 => finding(name, Status::Ok, v.to_string(), "<= 1", WHY_SWAP),
        Ok(v) if no_swap => finding(
            name,
            Status::Ok,
            format!("{v} (no swap configured)"),
            "<= 1",
            WHY_SWAP,
        ),
        Ok(v) => {
            let mut f = finding(name, Status::Change, v.to_string(), "<= 1", WHY_SWAP);
            f.fixes.push(Fix::Write {
                path: host.path(p),
                value: "1".into(),
            });
            f
        }
    }]
}

const WHY_THP: &str = "`always` makes khugepaged compact memory behind the broker's back (latency spikes) and bloats \
     RSS of sparse allocations; `madvise` leaves huge pages to programs that ask for them";

fn thp(host: &Host, name: &'static str, file: &str, bad: &str, fix: &str) -> Vec<Finding> {
    let p = format!("/sys/kernel/mm/transparent_hugepage/{file}");
    let want = format!("not {bad} ({fix})");
    vec![match host.read(&p).map(|s| parse_selector(&s)) {
        Err(e) => unknown(name, e, &want, WHY_THP),
        Ok(None) => unknown(name, "unparsable".into(), &want, WHY_THP),
        Ok(Some((active, _))) if active != bad => finding(name, Status::Ok, active, want, WHY_THP),
        Ok(Some((active, _))) => {
            let mut f = finding(name, Status::Change, active, want, WHY_THP);
            f.fixes.push(Fix::Write {
                path: host.path(&p),
                value: fix.into(),
            });
            f
        }
    }]
}

fn thp_enabled(host: &Host, _: &Context, name: &'static str) -> Vec<Finding> {
    thp(host, name, "enabled", "always", "madvise")
}

fn thp_defrag(host: &Host, _: &Context, name: &'static str) -> Vec<Finding> {
    thp(host, name, "defrag", "always", "madvise")
}

/// glommio fails to start below this (its `MIN_MEMLOCK_LIMIT`).
pub const GLOMMIO_MIN_MEMLOCK: u64 = 512 << 10;
/// Each shard registers its 10 MiB I/O buffer with three rings; below this per shard the
/// registration fails and glommio falls back to unregistered buffers (it logs a warning).
pub const MEMLOCK_PER_SHARD: u64 = 32 << 20;

const WHY_MEMLOCK: &str = "io_uring needs locked memory: glommio refuses to start below 512 KiB, and each shard pins a \
     10 MiB buffer in three rings (~32 MiB) to use registered buffers (not charged with CAP_IPC_LOCK); \
     `LimitMEMLOCK=infinity`";

fn memlock(host: &Host, ctx: &Context, name: &'static str) -> Vec<Finding> {
    let (shards, _) = shard_cpus(host, ctx);
    let need = MEMLOCK_PER_SHARD * shards.len().max(1) as u64;
    let want = format!(
        "unlimited (>= {} for {} shards)",
        fmt_bytes(need),
        shards.len().max(1)
    );
    let manual = Fix::Manual(
        "the broker's memlock limit: LimitMEMLOCK=infinity in the systemd unit (tuning/ringbolt.service), \
         `ulimit -l unlimited`, or `memlock unlimited` in /etc/security/limits.d/"
            .into(),
    );
    let Some(l) = host.limits.memlock else {
        return vec![unknown(name, "getrlimit failed".into(), &want, WHY_MEMLOCK)];
    };
    let cur = format!("soft {} / hard {}", fmt_bytes(l.soft), fmt_bytes(l.hard));
    let (status, cur) = if l.soft < GLOMMIO_MIN_MEMLOCK {
        (Status::Change, format!("{cur}: the broker will not start"))
    } else if host.limits.ipc_lock && l.soft < need {
        (
            Status::Ok,
            format!("{cur}, CAP_IPC_LOCK: registration not charged"),
        )
    } else if l.soft < need {
        (Status::Change, format!("{cur}: buffers not registered"))
    } else {
        (Status::Ok, cur)
    };
    let mut f = finding(name, status, cur, want, WHY_MEMLOCK);
    if status == Status::Change {
        f.fixes.push(manual);
    }
    vec![f]
}

pub const NOFILE_MIN: u64 = 1_048_576;

const WHY_NOFILE: &str = "every partition keeps its active segment's .log, .index and .timeindex open, plus one \
     descriptor per connection: 10,000 partitions and their clients exceed a few tens of thousands";

fn nofile(host: &Host, _: &Context, name: &'static str) -> Vec<Finding> {
    let want = format!(">= {NOFILE_MIN}");
    let Some(l) = host.limits.nofile else {
        return vec![unknown(name, "getrlimit failed".into(), &want, WHY_NOFILE)];
    };
    let cur = format!("soft {} / hard {}", fmt_count(l.soft), fmt_count(l.hard));
    if l.soft >= NOFILE_MIN {
        return vec![finding(name, Status::Ok, cur, want, WHY_NOFILE)];
    }
    let mut f = finding(name, Status::Change, cur, want, WHY_NOFILE);
    let nr_open = host
        .read_u64("/proc/sys/fs/nr_open")
        .map(|v| format!(" (fs.nr_open is {v}: the hard limit cannot exceed it)"))
        .unwrap_or_default();
    f.fixes.push(Fix::Manual(format!(
        "LimitNOFILE={NOFILE_MIN} in the systemd unit, or `nofile` in /etc/security/limits.d/{nr_open}"
    )));
    vec![f]
}

const WHY_NICQ: &str = "with fewer receive queues than shards, RSS lands the traffic of many connections on a few cores' \
     softirqs; one queue per shard core spreads it (`ethtool -L IF combined N`)";

fn nic_queues(host: &Host, ctx: &Context, name: &'static str) -> Vec<Finding> {
    let (shards, _) = shard_cpus(host, ctx);
    let want_n = shards.len().max(1);
    let want = format!(">= {want_n} rx queues");
    // Physical (or paravirtual) NICs have a `device` link; lo, bridges, veth, ifb do not.
    let nics: Vec<String> = host
        .list("/sys/class/net")
        .into_iter()
        .filter(|n| host.exists(&format!("/sys/class/net/{n}/device")))
        .collect();
    if nics.is_empty() {
        return vec![unknown(
            name,
            "no physical NIC found".into(),
            &want,
            WHY_NICQ,
        )];
    }
    nics.into_iter()
        .map(|nic| {
            let q = host
                .list(&format!("/sys/class/net/{nic}/queues"))
                .iter()
                .filter(|q| q.starts_with("rx-"))
                .count();
            let mut f = if q == 0 {
                unknown(name, "no queues listed".into(), &want, WHY_NICQ)
            } else if q >= want_n {
                finding(name, Status::Ok, format!("{q} rx queues"), &want, WHY_NICQ)
            } else {
                let mut f = finding(
                    name,
                    Status::Change,
                    format!("{q} rx queues"),
                    &want,
                    WHY_NICQ,
                );
                f.fixes.push(Fix::Manual(format!(
                    "ethtool -L {nic} combined {want_n} (if the NIC has that many channels; \
                     else spread with RPS: /sys/class/net/{nic}/queues/rx-*/rps_cpus)"
                )));
                f
            };
            f.subject = nic;
            f
        })
        .collect()
}
