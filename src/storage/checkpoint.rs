//! Kafka's text checkpoint files, written crash-safely.
//!
//! Kafka keeps small per-log state in text files of one shape (`CheckpointFile`): a version line,
//! a line with the number of entries, then one entry per line, fields separated by a space. The
//! leader epoch cache (`leader-epoch-checkpoint`: `epoch startOffset`) and the log start offset
//! (`log_start.rs`) use it here.
//!
//! A write replaces the whole file: the new contents go to `<name>.tmp`, which is fsynced, renamed
//! over `<name>`, and the directory is fsynced, so after a crash at any point the file holds
//! either the old or the new contents, never a mix (a leftover `.tmp` is ignored and overwritten
//! by the next write). A reader that finds a file it cannot parse reports it as corrupt rather
//! than guessing; callers decide what that means for them.

use std::io;
use std::path::Path;

use super::error::StorageError;
use super::segment::{self, sync_dir};

/// A checkpoint file's contents could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("malformed checkpoint file {file}: {msg}")]
pub struct MalformedCheckpoint {
    pub file: String,
    pub msg: String,
}

/// Encodes `entries` (each a line of space-separated fields) in the checkpoint format.
pub fn encode(version: u32, entries: &[String]) -> Vec<u8> {
    let mut s = format!("{version}\n{}\n", entries.len());
    for e in entries {
        s.push_str(e);
        s.push('\n');
    }
    s.into_bytes()
}

/// Parses a checkpoint file of `version`: the entry lines, each split into its fields.
pub fn parse(
    file: &str,
    version: u32,
    bytes: &[u8],
) -> Result<Vec<Vec<String>>, MalformedCheckpoint> {
    let bad = |msg: String| MalformedCheckpoint {
        file: file.to_string(),
        msg,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
    let mut lines = text.lines();
    let v: u32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("no version line".into()))?;
    if v != version {
        return Err(bad(format!("version {v}, expected {version}")));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("no entry count".into()))?;
    let entries: Vec<Vec<String>> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    if entries.len() != count {
        return Err(bad(format!(
            "{} entries, the count line says {count}",
            entries.len()
        )));
    }
    Ok(entries)
}

/// Reads `<dir>/<name>`; `None` when it does not exist.
pub async fn read(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    segment::read_small_file(&dir.join(name)).await
}

/// Replaces `<dir>/<name>` with `bytes` crash-safely (temp file, fsync, rename, directory fsync).
pub async fn write(dir: &Path, name: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    segment::write_small_file(&tmp, bytes).await?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let entries = vec!["0 0".to_string(), "3 120".to_string()];
        let bytes = encode(0, &entries);
        assert_eq!(bytes, b"0\n2\n0 0\n3 120\n");
        let parsed = parse("f", 0, &bytes).unwrap();
        assert_eq!(parsed, vec![vec!["0", "0"], vec!["3", "120"]]);
        assert_eq!(parse("f", 0, b"0\n0\n").unwrap(), Vec::<Vec<String>>::new());
    }

    #[test]
    fn malformed_files_are_refused() {
        for bad in [
            &b""[..],
            b"1\n0\n",
            b"0\n",
            b"0\n2\n0 0\n",
            b"x\n0\n",
            b"0\n1\n\xff\n",
        ] {
            assert!(parse("f", 0, bad).is_err(), "{bad:?}");
        }
    }
}
