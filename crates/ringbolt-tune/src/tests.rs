//! Decisions and parsers against fake `/proc` + `/sys` trees.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::checks::{self, CHECKS, Context, Finding, Fix, Status};
use super::host::*;

struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Tree {
        Tree(tempfile::tempdir().unwrap())
    }
    fn root(&self) -> &Path {
        self.0.path()
    }
    fn file(&self, p: &str, content: &str) -> &Self {
        let p = self.root().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{content}\n")).unwrap();
        self
    }
    fn dir(&self, p: &str) -> &Self {
        std::fs::create_dir_all(self.root().join(p.trim_start_matches('/'))).unwrap();
        self
    }
    fn link(&self, p: &str, target: &str) -> &Self {
        let p = self.root().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }
    fn host(&self, limits: Limits) -> Host {
        Host::at(self.root(), limits)
    }
}

const GOOD_LIMITS: Limits = Limits {
    memlock: Some(Limit {
        soft: u64::MAX,
        hard: u64::MAX,
    }),
    nofile: Some(Limit {
        soft: 1 << 20,
        hard: 1 << 20,
    }),
    ipc_lock: false,
};

/// A 4-CPU machine with one NVMe disk and one NIC, everything set as tuning/README.md says.
fn tuned() -> Tree {
    let t = Tree::new();
    t.file("/sys/devices/system/cpu/online", "0-3");
    for c in 0..4 {
        let cpu = format!("/sys/devices/system/cpu/cpu{c}");
        t.file(&format!("{cpu}/cpufreq/scaling_governor"), "performance");
        for (i, (name, lat, dis)) in [("POLL", 0, 0), ("C1", 2, 0), ("C6", 133, 1)]
            .into_iter()
            .enumerate()
        {
            t.file(&format!("{cpu}/cpuidle/state{i}/name"), name)
                .file(&format!("{cpu}/cpuidle/state{i}/latency"), &lat.to_string())
                .file(&format!("{cpu}/cpuidle/state{i}/disable"), &dis.to_string());
        }
    }
    t.file(
        "/proc/interrupts",
        "           CPU0 CPU1 CPU2 CPU3\n \
         40:  1 2 3 4  PCI-MSIX-0000:01:00.0  0-edge  nvme0q0\n \
         41:  1 2 3 4  PCI-MSIX-0000:02:00.0  0-edge  mlx5_comp0@pci:0000:02:00.0\n \
         42:  1 0 0 0  PCI-MSIX-0000:02:00.0  0-edge  mlx5_async0@pci:0000:02:00.0\n \
         LOC: 9 9 9 9  Local timer interrupts",
    )
    .file("/proc/irq/40/smp_affinity_list", "3")
    .file("/proc/irq/41/smp_affinity_list", "3")
    .file("/proc/irq/42/smp_affinity_list", "0-3");
    t.file(
        "/sys/block/nvme0n1/queue/scheduler",
        "[none] mq-deadline kyber",
    )
    .file("/sys/block/nvme0n1/queue/nomerges", "2")
    .file("/sys/block/nvme0n1/queue/rotational", "0")
    .file("/sys/block/loop0/queue/scheduler", "[mq-deadline] none")
    .file("/proc/sys/fs/aio-max-nr", "1048576")
    .file("/proc/sys/fs/nr_open", "1048576")
    .file("/proc/sys/net/core/somaxconn", "4096")
    .file("/proc/sys/net/ipv4/tcp_max_syn_backlog", "8192")
    .file("/proc/sys/vm/swappiness", "1")
    .file("/proc/meminfo", "MemTotal: 100 kB\nSwapTotal: 2048 kB")
    .file(
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "always [madvise] never",
    )
    .file(
        "/sys/kernel/mm/transparent_hugepage/defrag",
        "always defer defer+madvise [madvise] never",
    )
    .dir("/sys/class/net/lo/queues/rx-0")
    .dir("/sys/class/net/eth0/device");
    for q in 0..4 {
        t.dir(&format!("/sys/class/net/eth0/queues/rx-{q}"));
    }
    t
}

/// The same machine with distribution defaults.
fn untuned() -> Tree {
    let t = tuned();
    for c in 0..4 {
        let cpu = format!("/sys/devices/system/cpu/cpu{c}");
        t.file(&format!("{cpu}/cpufreq/scaling_governor"), "powersave")
            .file(&format!("{cpu}/cpuidle/state2/disable"), "0");
    }
    t.file("/proc/irq/40/smp_affinity_list", "0-3")
        .file(
            "/sys/block/nvme0n1/queue/scheduler",
            "none [mq-deadline] kyber",
        )
        .file("/sys/block/nvme0n1/queue/nomerges", "0")
        .file("/proc/sys/fs/aio-max-nr", "65536")
        .file("/proc/sys/net/core/somaxconn", "128")
        .file("/proc/sys/net/ipv4/tcp_max_syn_backlog", "512")
        .file("/proc/sys/vm/swappiness", "60")
        .file(
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "[always] madvise never",
        )
        .file(
            "/sys/kernel/mm/transparent_hugepage/defrag",
            "[always] defer defer+madvise madvise never",
        );
    std::fs::remove_dir_all(t.root().join("sys/class/net/eth0/queues/rx-1")).unwrap();
    std::fs::remove_dir_all(t.root().join("sys/class/net/eth0/queues/rx-2")).unwrap();
    std::fs::remove_dir_all(t.root().join("sys/class/net/eth0/queues/rx-3")).unwrap();
    t
}

fn by_check<'a>(fs: &'a [Finding], name: &str) -> Vec<&'a Finding> {
    fs.iter().filter(|f| f.check == name).collect()
}

fn three_shards() -> Context {
    Context {
        shards: Some(3),
        data_dir: None,
    }
}

#[test]
fn parsers() {
    assert_eq!(parse_cpu_list("0-3,5,7-8"), Some(vec![0, 1, 2, 3, 5, 7, 8]));
    assert_eq!(parse_cpu_list("2"), Some(vec![2]));
    assert_eq!(parse_cpu_list(""), Some(vec![]));
    assert_eq!(parse_cpu_list("3-1"), None);
    assert_eq!(parse_cpu_list("x"), None);
    assert_eq!(format_cpu_list(&[5, 0, 1, 2, 7, 8]), "0-2,5,7-8");
    assert_eq!(
        parse_selector("none [mq-deadline] kyber bfq"),
        Some((
            "mq-deadline".into(),
            vec![
                "none".into(),
                "mq-deadline".into(),
                "kyber".into(),
                "bfq".into()
            ]
        ))
    );
    assert_eq!(
        parse_selector("none"),
        Some(("none".into(), vec!["none".into()]))
    );
    assert_eq!(parse_selector("a b"), None);
    let irqs = parse_interrupts(
        "   CPU0 CPU1\n 36:  0 51172 PCI-MSIX-0000:00:02.0 1-edge virtio1-req.0\nNMI: 0 0 Non-maskable\n",
    );
    assert_eq!(irqs, vec![(36, "virtio1-req.0".to_string())]);
    assert!(is_io_irq("virtio1-req.0"));
    assert!(is_io_irq("virtio2-input.0"));
    assert!(is_io_irq("nvme0q3"));
    assert!(!is_io_irq("virtio0-config"));
    assert!(!is_io_irq("ttyS0"));
    assert!(!is_io_irq("mlx5_async0@pci:0000:02:00.0"));
    assert_eq!(fmt_bytes(512 << 10), "512 KiB");
    assert_eq!(fmt_bytes(u64::MAX), "unlimited");
    assert_eq!(fmt_bytes(1000), "1000 B");
    assert_eq!(
        cap_eff("Name: x\nCapEff:\t000001fffeffffff\n"),
        Some(0x1fffeffffff)
    );
    assert_eq!(cap_eff("CapEff: zz"), None);
}

#[test]
fn tuned_host_is_all_ok() {
    let t = tuned();
    let fs = checks::run_all(&t.host(GOOD_LIMITS), &three_shards());
    for f in &fs {
        assert_eq!(f.status, Status::Ok, "{f:?}");
    }
    // loop devices are not checked; the NVMe disk is.
    assert_eq!(by_check(&fs, "disk.scheduler").len(), 1);
    assert_eq!(by_check(&fs, "disk.scheduler")[0].subject, "nvme0n1");
    assert_eq!(super::check_status(&fs, true), 0);
}

#[test]
fn untuned_host_gets_every_fix_and_apply_makes_it_ok() {
    let t = untuned();
    let host = t.host(GOOD_LIMITS);
    let fs = checks::run_all(&host, &three_shards());
    let change: Vec<_> = fs
        .iter()
        .filter(|f| f.status == Status::Change)
        .map(|f| f.check)
        .collect();
    assert_eq!(
        change,
        [
            "cpu.governor",
            "cpu.cstates",
            "irq.affinity",
            "disk.scheduler",
            "disk.nomerges",
            "fs.aio-max-nr",
            "net.core.somaxconn",
            "net.ipv4.tcp_max_syn_backlog",
            "net.nic-queues",
            "vm.transparent_hugepage",
            "vm.transparent_hugepage.defrag",
            "vm.swappiness",
        ]
    );
    assert_eq!(super::check_status(&fs, false), 1);
    let writes = |name: &str| -> Vec<(String, String)> {
        by_check(&fs, name)
            .iter()
            .flat_map(|f| f.fixes.iter())
            .filter_map(|x| match x {
                Fix::Write { path, value } => Some((
                    path.strip_prefix(t.root()).unwrap().display().to_string(),
                    value.clone(),
                )),
                Fix::Manual(_) => None,
            })
            .collect()
    };
    assert_eq!(writes("cpu.governor").len(), 4);
    assert_eq!(
        writes("cpu.cstates"),
        (0..4)
            .map(|c| (
                format!("sys/devices/system/cpu/cpu{c}/cpuidle/state2/disable"),
                "1".into()
            ))
            .collect::<Vec<_>>()
    );
    // Only the NVMe queue IRQ sat on shard cores 0-2; it moves to the spare core 3. The async IRQ
    // is not an I/O queue and is left alone.
    assert_eq!(
        writes("irq.affinity"),
        [("proc/irq/40/smp_affinity_list".into(), "3".into())]
    );
    assert_eq!(
        writes("disk.scheduler"),
        [("sys/block/nvme0n1/queue/scheduler".into(), "none".into())]
    );
    assert_eq!(
        writes("vm.swappiness"),
        [("proc/sys/vm/swappiness".into(), "1".into())]
    );
    assert_eq!(
        writes("vm.transparent_hugepage"),
        [(
            "sys/kernel/mm/transparent_hugepage/enabled".into(),
            "madvise".into()
        )]
    );
    assert!(
        writes("net.nic-queues").is_empty(),
        "NIC channels are manual"
    );

    // Dry run changes nothing; apply writes; the report then only has the manual NIC item.
    let mut out = Vec::new();
    assert_eq!(super::apply(&mut out, &fs, true).unwrap(), 0);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("would write \"1\" to"), "{text}");
    assert_eq!(
        checks::run_all(&host, &three_shards())
            .iter()
            .filter(|f| f.status == Status::Change)
            .count(),
        12
    );
    let mut out = Vec::new();
    assert_eq!(super::apply(&mut out, &fs, false).unwrap(), 0);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("wrote \"performance\""), "{text}");
    assert!(text.contains("(was \"powersave\")"), "{text}");
    assert!(
        text.contains("manual [net.nic-queues]: ethtool -L eth0 combined 3"),
        "{text}"
    );
    // Fake files are plain files: a write replaces a selector's contents with the bare choice,
    // which parse_selector reads as the active one (as for single-choice kernel files).
    let after: Vec<_> = checks::run_all(&host, &three_shards())
        .into_iter()
        .filter(|f| f.status != Status::Ok)
        .map(|f| f.check)
        .collect();
    assert_eq!(after, ["net.nic-queues"]);
}

#[test]
fn empty_root_is_unknown_not_a_crash() {
    let t = Tree::new();
    let no_limits = Limits::default();
    let fs = checks::run_all(&t.host(no_limits), &Context::default());
    for (name, _) in CHECKS {
        let mine = by_check(&fs, name);
        assert!(!mine.is_empty(), "{name} missing from the report");
        for f in mine {
            assert_ne!(f.status, Status::Change, "{f:?}");
        }
    }
    assert!(
        fs.iter()
            .all(|f| f.status == Status::Unknown || f.check == "irq.affinity")
    );
    assert_eq!(super::check_status(&fs, false), 0);
    assert_eq!(super::check_status(&fs, true), 1);
    let mut out = Vec::new();
    super::write_report(&mut out, &t.host(no_limits), &fs).unwrap();
    let text = String::from_utf8(out).unwrap();
    for (name, _) in CHECKS {
        assert!(text.contains(name), "{name} not in\n{text}");
    }
}

#[test]
fn garbage_values_are_unknown() {
    let t = tuned();
    t.file("/proc/sys/vm/swappiness", "lots")
        .file("/sys/kernel/mm/transparent_hugepage/enabled", "")
        .file("/sys/devices/system/cpu/online", "x-y");
    let fs = checks::run_all(&t.host(GOOD_LIMITS), &Context::default());
    assert_eq!(by_check(&fs, "vm.swappiness")[0].status, Status::Unknown);
    assert_eq!(
        by_check(&fs, "vm.transparent_hugepage")[0].status,
        Status::Unknown
    );
    // online unreadable: falls back to the cpuN directories.
    assert_eq!(checks::online_cpus(&t.host(GOOD_LIMITS)), vec![0, 1, 2, 3]);
}

#[test]
fn irq_affinity_when_every_core_runs_a_shard() {
    let t = untuned();
    let fs = checks::run_all(&t.host(GOOD_LIMITS), &Context::default());
    let f = by_check(&fs, "irq.affinity")[0];
    assert_eq!(f.status, Status::Ok);
    assert!(
        f.current.contains("every CPU (0-3) runs a shard"),
        "{}",
        f.current
    );
}

#[test]
fn memlock_and_nofile_thresholds() {
    let t = tuned();
    let lim = |memlock: u64, nofile: u64| Limits {
        memlock: Some(Limit {
            soft: memlock,
            hard: memlock,
        }),
        nofile: Some(Limit {
            soft: nofile,
            hard: nofile,
        }),
        ipc_lock: false,
    };
    let get = |l: Limits, name: &str| {
        let fs = checks::run_all(&t.host(l), &Context::default());
        by_check(&fs, name)[0].clone()
    };
    let f = get(lim(64 << 10, 1024), "limit.memlock");
    assert_eq!(f.status, Status::Change);
    assert!(f.current.contains("will not start"), "{}", f.current);
    let f = get(lim(8 << 20, 1024), "limit.memlock");
    assert_eq!(f.status, Status::Change);
    assert!(f.current.contains("not registered"), "{}", f.current);
    // With CAP_IPC_LOCK only glommio's start check matters.
    let f = get(
        Limits {
            ipc_lock: true,
            ..lim(8 << 20, 1024)
        },
        "limit.memlock",
    );
    assert_eq!(f.status, Status::Ok, "{f:?}");
    assert!(f.current.contains("CAP_IPC_LOCK"), "{}", f.current);
    let f = get(
        Limits {
            ipc_lock: true,
            ..lim(64 << 10, 1024)
        },
        "limit.memlock",
    );
    assert_eq!(f.status, Status::Change);
    // 4 shards × 32 MiB.
    assert_eq!(
        get(lim(128 << 20, 1024), "limit.memlock").status,
        Status::Ok
    );
    assert_eq!(get(lim(u64::MAX, 1024), "limit.memlock").status, Status::Ok);
    let f = get(lim(u64::MAX, 1024), "limit.nofile");
    assert_eq!(f.status, Status::Change);
    assert!(matches!(&f.fixes[0], Fix::Manual(m) if m.contains("LimitNOFILE=1048576")));
    assert_eq!(
        get(lim(u64::MAX, u64::MAX), "limit.nofile").status,
        Status::Ok
    );
}

#[test]
fn swappiness_without_swap_is_ok() {
    let t = untuned();
    t.file("/proc/meminfo", "MemTotal: 100 kB\nSwapTotal:        0 kB");
    let fs = checks::run_all(&t.host(GOOD_LIMITS), &Context::default());
    let f = by_check(&fs, "vm.swappiness")[0];
    assert_eq!(f.status, Status::Ok);
    assert!(f.current.contains("no swap"));
}

#[test]
fn data_dir_selects_its_disk_through_partition_and_device_mapper() {
    let data = tempfile::tempdir().unwrap();
    let dev = std::fs::metadata(data.path()).unwrap().dev();
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let ctx = Context {
        shards: None,
        data_dir: Some(data.path().to_path_buf()),
    };

    // A partition: /sys/dev/block/M:m -> devices/.../nvme1n1/nvme1n1p2.
    let t = tuned();
    t.file("/sys/block/nvme1n1/queue/scheduler", "none [kyber]")
        .file("/sys/block/nvme1n1/queue/nomerges", "0")
        .file("/sys/block/nvme1n1/queue/rotational", "0")
        .file("/sys/devices/pci0/nvme1/nvme1n1/nvme1n1p2/partition", "2")
        .link(
            &format!("/sys/dev/block/{maj}:{min}"),
            "../../devices/pci0/nvme1/nvme1n1/nvme1n1p2",
        );
    let fs = checks::run_all(&t.host(GOOD_LIMITS), &ctx);
    let s = by_check(&fs, "disk.scheduler");
    assert_eq!(s.len(), 1, "only the data dir's disk: {s:?}");
    // A data dir not created yet: its parent's filesystem.
    let later = Context {
        shards: None,
        data_dir: Some(data.path().join("not/yet")),
    };
    let fs2 = checks::run_all(&t.host(GOOD_LIMITS), &later);
    assert_eq!(by_check(&fs2, "disk.scheduler")[0].subject, "nvme1n1");
    assert_eq!(s[0].subject, "nvme1n1");
    assert_eq!(s[0].status, Status::Change);
    assert_eq!(s[0].current, "kyber");

    // device-mapper over two disks: both are checked.
    let t = tuned();
    t.file("/sys/block/sda/queue/scheduler", "[mq-deadline] none")
        .file("/sys/block/sda/queue/rotational", "1")
        .file("/sys/block/sda/queue/nomerges", "0")
        .dir("/sys/devices/virtual/block/dm-0")
        .dir("/sys/devices/pci0/nvme0/nvme0n1")
        .dir("/sys/devices/pci0/sata/sda")
        .dir("/sys/block/dm-0")
        .link(
            "/sys/devices/virtual/block/dm-0/slaves/nvme0n1",
            "../../../../pci0/nvme0/nvme0n1",
        )
        .link(
            "/sys/devices/virtual/block/dm-0/slaves/sda",
            "../../../../pci0/sata/sda",
        )
        .link(
            &format!("/sys/dev/block/{maj}:{min}"),
            "../../devices/virtual/block/dm-0",
        );
    let fs = checks::run_all(&t.host(GOOD_LIMITS), &ctx);
    let s = by_check(&fs, "disk.scheduler");
    let subjects: Vec<_> = s
        .iter()
        .map(|f| (f.subject.as_str(), f.status, f.recommended.as_str()))
        .collect();
    assert_eq!(
        subjects,
        [
            ("nvme0n1", Status::Ok, "none"),
            ("sda", Status::Ok, "mq-deadline")
        ]
    );
    // A rotational disk keeps merging.
    let m = by_check(&fs, "disk.nomerges");
    assert_eq!(m[1].subject, "sda");
    assert_eq!(m[1].status, Status::Ok);

    // The data dir's device is unknown to this sysfs: unknown, not a crash.
    let t = tuned();
    let fs = checks::run_all(&t.host(GOOD_LIMITS), &ctx);
    assert_eq!(by_check(&fs, "disk.scheduler")[0].status, Status::Unknown);
}

#[test]
fn memlock_preflight_message() {
    let low = Some(Limit {
        soft: 256 << 10,
        hard: 256 << 10,
    });
    let err = super::check_memlock(low).unwrap_err().to_string();
    assert!(err.contains("256 KiB, below the 512 KiB"), "{err}");
    assert!(err.contains("ulimit -l unlimited"), "{err}");
    let ok = Some(Limit {
        soft: 512 << 10,
        hard: 512 << 10,
    });
    assert!(super::check_memlock(ok).is_ok());
    assert!(
        super::check_memlock(None).is_ok(),
        "unreadable: let glommio decide"
    );
}
