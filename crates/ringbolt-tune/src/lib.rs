//! `ringbolt tune check` / `ringbolt tune apply`: the host settings a bare-metal Ringbolt wants.
//!
//! `check` reads procfs, sysfs and this process's resource limits, and prints, for every check in
//! [`checks::CHECKS`], the current value, the recommended one and whether they agree. It needs no
//! privileges; a value it cannot read is reported as `unknown` (a VM without cpufreq, a container
//! without `/sys`) and never aborts the run. Exit status: 0 when nothing needs changing (unknowns
//! allowed, unless `--strict`), 1 otherwise.
//!
//! `apply` (root) writes the recommended values into the sysfs/procfs files the checks named,
//! printing each write with its old value, and prints the rest as advice: resource limits belong to
//! the broker's own process (the systemd unit in `tuning/`), NIC channel counts need ethtool, and
//! C-states are best fixed on the kernel command line. Nothing `apply` writes survives a reboot;
//! `tuning/README.md` has the persistent forms (sysctl.d, udev rule, unit file).
//!
//! The root directory is a flag (`--root`) so the tests run every check against fake trees; the
//! decisions are plain functions of file contents.

pub mod checks;
pub mod host;

use std::io::Write as _;
use std::path::PathBuf;

use checks::{Context, Finding, Fix, Status};
use host::{Host, Limits};

#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    #[command(subcommand)]
    pub command: TuneCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum TuneCommand {
    /// Report current vs recommended host settings (no root needed; exit 1 if any should change).
    Check(CommonArgs),
    /// Write the recommended values (root); prints every change; the rest is printed as advice.
    Apply {
        #[command(flatten)]
        common: CommonArgs,
        /// Print what would be written without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Shards the broker will run (`serve --shards`) [default: one per online CPU]
    #[arg(long)]
    pub shards: Option<usize>,
    /// The broker's data directory: disk checks look at its device only [default: every disk]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory standing in for `/` (holding proc/ and sys/); for tests and offline inspection
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Print the findings as JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Count unknown values as failures in the exit status (check)
    #[arg(long)]
    pub strict: bool,
}

impl CommonArgs {
    fn host_and_context(&self) -> (Host, Context) {
        (
            Host::at(&self.root, Limits::current()),
            Context {
                shards: self.shards,
                data_dir: self.data_dir.clone(),
            },
        )
    }
}

/// Runs `tune check|apply`; returns the process exit status.
pub fn tune_main(args: TuneArgs) -> anyhow::Result<i32> {
    let mut out = std::io::stdout().lock();
    match args.command {
        TuneCommand::Check(common) => {
            let (host, ctx) = common.host_and_context();
            let findings = checks::run_all(&host, &ctx);
            if common.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&findings)?)?;
            } else {
                write_report(&mut out, &host, &findings)?;
            }
            Ok(check_status(&findings, common.strict))
        }
        TuneCommand::Apply { common, dry_run } => {
            let (host, ctx) = common.host_and_context();
            // SAFETY: geteuid has no preconditions.
            let root_user = unsafe { libc::geteuid() } == 0;
            if !dry_run && !root_user && host.root() == std::path::Path::new("/") {
                anyhow::bail!(
                    "tune apply writes to /proc/sys and /sys: run it as root (or --dry-run)"
                );
            }
            let findings = checks::run_all(&host, &ctx);
            let failed = apply(&mut out, &findings, dry_run)?;
            Ok(i32::from(failed > 0))
        }
    }
}

/// Fails with an actionable message when this process's locked-memory limit is below what glommio
/// needs to create its io_uring rings (otherwise the shards fail deep inside executor start-up).
pub fn memlock_preflight() -> anyhow::Result<()> {
    check_memlock(Limits::current().memlock)
}

fn check_memlock(limit: Option<host::Limit>) -> anyhow::Result<()> {
    match limit {
        Some(l) if l.soft < checks::GLOMMIO_MIN_MEMLOCK => anyhow::bail!(
            "locked-memory limit (RLIMIT_MEMLOCK) is {}, below the {} io_uring needs: raise it with \
             `ulimit -l unlimited` or LimitMEMLOCK=infinity (tuning/ringbolt.service); \
             `ringbolt tune check` lists the other host settings",
            host::fmt_bytes(l.soft),
            host::fmt_bytes(checks::GLOMMIO_MIN_MEMLOCK)
        ),
        _ => Ok(()),
    }
}

/// 0 when nothing needs changing (and, with `strict`, nothing is unknown), else 1.
pub fn check_status(findings: &[Finding], strict: bool) -> i32 {
    let bad = findings
        .iter()
        .any(|f| f.status == Status::Change || (strict && f.status == Status::Unknown));
    i32::from(bad)
}

/// The human report: one row per finding, then the reasons and fixes of those to change.
pub fn write_report(
    out: &mut impl std::io::Write,
    host: &Host,
    findings: &[Finding],
) -> std::io::Result<()> {
    writeln!(out, "ringbolt tune check (root {})", host.root().display())?;
    let name_w = findings
        .iter()
        .map(|f| f.check.len() + f.subject.len() + 3)
        .max()
        .unwrap_or(10);
    writeln!(
        out,
        "{:<name_w$}  {:<7}  {:<40}  RECOMMENDED",
        "CHECK", "STATUS", "CURRENT"
    )?;
    for f in findings {
        let label = if f.subject == "all" {
            f.check.to_string()
        } else {
            format!("{} [{}]", f.check, f.subject)
        };
        writeln!(
            out,
            "{label:<name_w$}  {:<7}  {:<40}  {}",
            f.status.label(),
            f.current,
            f.recommended
        )?;
    }
    let count = |s| findings.iter().filter(|f| f.status == s).count();
    writeln!(
        out,
        "\n{} ok, {} to change, {} unknown",
        count(Status::Ok),
        count(Status::Change),
        count(Status::Unknown)
    )?;
    for f in findings.iter().filter(|f| f.status == Status::Change) {
        writeln!(out, "\n{} [{}]: {}", f.check, f.subject, f.why)?;
        for fix in &f.fixes {
            match fix {
                Fix::Write { path, value } => {
                    writeln!(out, "  apply: echo {value} > {}", path.display())?
                }
                Fix::Manual(m) => writeln!(out, "  manual: {m}")?,
            }
        }
    }
    if count(Status::Change) > 0 {
        writeln!(
            out,
            "\n`ringbolt tune apply` (root) makes the `apply:` changes; see tuning/README.md"
        )?;
    }
    Ok(())
}

/// Applies every `Fix::Write` of findings to change; prints each; returns how many writes failed.
pub fn apply(
    out: &mut impl std::io::Write,
    findings: &[Finding],
    dry_run: bool,
) -> std::io::Result<usize> {
    let mut failed = 0;
    let mut writes = 0;
    for f in findings.iter().filter(|f| f.status == Status::Change) {
        for fix in &f.fixes {
            match fix {
                Fix::Write { path, value } => {
                    writes += 1;
                    let old = host::read_trim(path).unwrap_or_else(|_| "?".into());
                    let old = old.lines().next().unwrap_or("").to_string();
                    if dry_run {
                        writeln!(
                            out,
                            "would write {value:?} to {} (now {old:?})  [{}]",
                            path.display(),
                            f.check
                        )?;
                        continue;
                    }
                    match std::fs::write(path, format!("{value}\n")) {
                        Ok(()) => writeln!(
                            out,
                            "wrote {value:?} to {} (was {old:?})  [{}]",
                            path.display(),
                            f.check
                        )?,
                        Err(e) => {
                            failed += 1;
                            writeln!(
                                out,
                                "FAILED to write {value:?} to {}: {e}  [{}]",
                                path.display(),
                                f.check
                            )?
                        }
                    }
                }
                Fix::Manual(m) => writeln!(out, "manual [{}]: {m}", f.check)?,
            }
        }
    }
    writeln!(
        out,
        "{writes} write(s){}{}; these do not survive a reboot (tuning/README.md has the persistent forms)",
        if dry_run { " planned" } else { "" },
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    )?;
    Ok(failed)
}

#[cfg(test)]
mod tests;
