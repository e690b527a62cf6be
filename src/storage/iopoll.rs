//! Keeping glommio off the io_uring IOPOLL ring on devices that have no poll queues.
//!
//! glommio sends `DmaFile` reads and writes to a ring set up with `IORING_SETUP_IOPOLL` whenever a
//! probe read on the first file it opens on a device succeeds. On current kernels that probe also
//! succeeds on devices *without* poll queues (`queue/io_poll` = 0: virtio disks, NVMe without the
//! `poll_queues` module parameter): the I/O then completes by interrupt as usual, but completions
//! on an IOPOLL ring are only reaped by polling, so an executor with a write in flight never
//! sleeps. It spins in `io_uring_enter` (timeouts armed and cancelled, `io_do_iopoll`) for the
//! whole write, and with a write in flight on most partitions most of the time the shards burn
//! their cores. On a dedicated, poll-queue NVMe that is glommio's design; on the 2-core
//! development VM (broker, load generator and the kernel's fdatasync workers sharing the cores)
//! `perf` showed the shards spending most of their time in the kernel in that loop (measured in
//! `docs/perf/produce-path.md`).
//!
//! glommio 0.9 has no option for this. It caches the probe's verdict per device and per thread,
//! and a probe that fails with anything but `ENOTSUP` (as it does on a write-only descriptor,
//! glommio issue #670) records "no iopoll". So each shard, before opening any log, opens one
//! write-only probe file in the data directory when sysfs says the device has no poll queues;
//! from then on its DMA I/O goes to the ordinary ring and completes by interrupt, and an idle
//! executor sleeps. glommio logs the failed probe read once per shard (EBADF) at error level;
//! `ringbolt`'s log filter drops that line (target `glommio::reactor`, which logs nothing else)
//! unless `RUST_LOG` names glommio. Devices with `io_poll` = 1 are left alone.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use glommio::io::OpenOptions;

/// `Some(true)` when the block device holding `dir` has poll queues, `Some(false)` when it has
/// none, `None` when sysfs does not say (not a block device, no sysfs).
pub fn device_has_poll_queues(dir: &Path) -> Option<bool> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    // A partition's sysfs node has no `queue/`; its parent (the whole disk) does.
    for p in [
        format!("/sys/dev/block/{major}:{minor}/queue/io_poll"),
        format!("/sys/dev/block/{major}:{minor}/../queue/io_poll"),
    ] {
        if let Ok(s) = std::fs::read_to_string(&p) {
            return Some(s.trim() == "1");
        }
    }
    None
}

/// Makes this executor thread use interrupt-driven DMA I/O for files under `dir` when the device
/// has no poll queues (see the module docs). Call on each shard before opening files there.
/// `RINGBOLT_KEEP_IOPOLL=1` skips it (for A/B measurements).
pub async fn avoid_iopoll_without_poll_queues(dir: &Path) {
    if device_has_poll_queues(dir) != Some(false)
        || std::env::var_os("RINGBOLT_KEEP_IOPOLL").is_some_and(|v| v == "1")
    {
        return;
    }
    tracing::info!(
        dir = %dir.display(),
        "device has no poll queues (queue/io_poll = 0): disabling glommio's IOPOLL ring with a \
         write-only probe (glommio's own log of the probe's EBADF is filtered out)"
    );
    // One file per call: shards probe concurrently, and glommio panics if the file vanishes
    // while it opens it (it statfs()es the path).
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!(".iopoll-probe-{}-{n}", std::process::id()));
    match OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(&probe)
        .await
    {
        Ok(f) => {
            let _ = f.close().await;
        }
        Err(e) => tracing::warn!(error = %e, "iopoll probe file could not be opened"),
    }
    let _ = std::fs::remove_file(&probe);
}
