//! Swapping rewritten segments in, crash-safely (Kafka's `.cleaned` → `.swap` protocol), and
//! finishing or undoing an interrupted swap when a log opens.
//!
//! A group of old segments `b1 < b2 < … < bk` is replaced by one new segment at `b1`:
//! 1. The pass writes `b1.log.cleaned`, `b1.index.cleaned`, `b1.timeindex.cleaned` (and
//!    `b1.txnindex.cleaned`, the group's aborted-transaction entries, when there are any) and
//!    `b1.replaces` (the old bases, one per line), fdatasyncs them and syncs the directory.
//! 2. Commit: `.index.cleaned` and `.timeindex.cleaned` are renamed to `.swap`, then
//!    `b1.log.cleaned` to `b1.log.swap` — the commit point — and the directory is synced.
//! 3. Install, in one synchronous step on the shard (no reader can see a half-done state): the
//!    old segments' files `b2…bk` are unlinked, the `.swap` files are renamed over `b1`'s
//!    files (rename replaces atomically), and the in-memory segment map swaps the old segments for
//!    the new one. The directory is synced, then `b1.replaces` removed.
//!
//! What a crash leaves and what [`recover_dir`] (run first when a log opens) does:
//! - before the commit: `.cleaned` files (and maybe index `.swap` files and `.replaces`) but no
//!   `.log.swap` → all of them are deleted: the old segment set stands;
//! - after the commit: `b1.log.swap` and `b1.replaces` → the old segments listed are deleted (those
//!   still there), the `.swap` files still there are renamed to their final names, `.replaces`
//!   removed: the new segment set stands.
//!
//! Why a `.replaces` file where Kafka has none: Kafka derives the old segments from the swap
//! segment's offset range, but a cleaned segment may end before the group did (its last batches
//! can all be dropped), and an old segment left behind past that end would bring back records the
//! swap removed. Writing the group down costs one tiny file per swap.
//!
//! Readers during a swap: every read descriptor is an `Arc<File>`, so a fetch that located its
//! batches in an old segment keeps reading the old (unlinked or renamed-over) inode, which holds
//! the same offsets; index lookups check that the segment still reads the same file
//! (`read.rs`). Only sealed segments are ever swapped, so the tail cache (active segment only) is
//! never involved.

use std::io;
use std::path::{Path, PathBuf};

use tracing::info;

use crate::storage::segment::{self, file_name};

/// The suffix of a new segment's files being written.
pub const CLEANED: &str = ".cleaned";
/// The suffix of a committed new segment's files not yet renamed into place.
pub const SWAP: &str = ".swap";
/// The suffix of the file listing the old segments a swap replaces.
pub const REPLACES: &str = "replaces";

/// The files of segment `base`, final names, the log last (its rename is the commit). The
/// `.txnindex` exists only when the segment has aborted transactions.
pub fn final_paths(dir: &Path, base: i64) -> [PathBuf; 4] {
    [
        segment::index_path(dir, base),
        segment::time_index_path(dir, base),
        crate::storage::txn_index::path(dir, base),
        segment::log_path(dir, base),
    ]
}

/// `path` with `suffix` appended.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn replaces_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(file_name(base, REPLACES))
}

fn remove_if_present(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Step 2: renames the `.cleaned` files of the new segment at `base` to `.swap`, the log last.
pub fn commit(dir: &Path, base: i64) -> io::Result<()> {
    let txn_index = crate::storage::txn_index::path(dir, base);
    for p in final_paths(dir, base) {
        let cleaned = with_suffix(&p, CLEANED);
        if p == txn_index && !cleaned.exists() {
            continue;
        }
        std::fs::rename(cleaned, with_suffix(&p, SWAP))?;
    }
    Ok(())
}

/// Step 3's file part: unlinks the old segments `old` other than `base`, then renames the swap
/// files over `base`'s (the log last).
pub fn install(dir: &Path, base: i64, old: &[i64]) -> io::Result<()> {
    for &b in old.iter().filter(|&&b| b != base) {
        for p in final_paths(dir, b) {
            remove_if_present(&p)?;
        }
    }
    for p in final_paths(dir, base) {
        let swap = with_suffix(&p, SWAP);
        if swap.exists() {
            std::fs::rename(&swap, &p)?;
        }
    }
    Ok(())
}

/// Undoes a swap that was not installed: the log `.swap` (the commit) goes first, so a crash in
/// between leaves an uncommitted state.
pub fn discard(dir: &Path, base: i64) {
    for p in final_paths(dir, base).iter().rev() {
        let _ = std::fs::remove_file(with_suffix(p, SWAP));
        let _ = std::fs::remove_file(with_suffix(p, CLEANED));
    }
    let _ = std::fs::remove_file(replaces_path(dir, base));
}

/// The bases a `.replaces` file lists.
pub fn read_replaces(dir: &Path, base: i64) -> Vec<i64> {
    std::fs::read_to_string(replaces_path(dir, base))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_else(|_| vec![base])
}

/// Finishes or discards swaps interrupted by a crash (module docs). Runs when a log opens,
/// before its segments are listed; synchronous (a directory listing and a few renames).
pub fn recover_dir(dir: &Path) -> io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let stem_base = |n: &str| -> Option<i64> {
        let stem = n.split('.').next()?;
        (stem.len() == 20).then(|| stem.parse().ok()).flatten()
    };
    let mut changed = false;
    // Committed swaps: finish them.
    for n in &names {
        if let Some(base) = n.strip_suffix(".log.swap").and_then(stem_base) {
            let old = read_replaces(dir, base);
            info!(dir = %dir.display(), base, replaced = ?old, "finishing an interrupted log-cleaner swap");
            install(dir, base, &old)?;
            changed = true;
        }
    }
    if changed {
        // The renames are durable before the `.replaces` that drove them goes.
        std::fs::File::open(dir)?.sync_all()?;
    }
    // Everything else a swap leaves: uncommitted work.
    for n in &names {
        let leftover = n.ends_with(CLEANED)
            || n.ends_with(".index.swap")
            || n.ends_with(".timeindex.swap")
            || n.ends_with(".txnindex.swap")
            || n.ends_with(&format!(".{REPLACES}"));
        if leftover && stem_base(n).is_some() {
            remove_if_present(&dir.join(n))?;
            changed = true;
        }
    }
    if changed {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
