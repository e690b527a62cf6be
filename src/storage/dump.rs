//! `ringbolt dump-log <file.log>`: prints every batch of a segment file, like Kafka's
//! `kafka-dump-log.sh`. Reads the file with plain std I/O (a tool, not the broker).

use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::Path;

use crate::format::record_batch::{self, BatchHeader, LOG_OVERHEAD};

/// One line per batch; a final line reports trailing bytes that are not a whole batch.
pub fn dump_bytes(data: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(total) = record_batch::peek_total_len(&data[pos..]) else {
            let _ = writeln!(
                out,
                "position: {pos} trailing {} bytes: not a batch",
                data.len() - pos
            );
            break;
        };
        if pos + total > data.len() || total < record_batch::HEADER_LEN {
            let _ = writeln!(
                out,
                "position: {pos} truncated batch: needs {total} bytes, {} present",
                data.len() - pos
            );
            break;
        }
        let batch = &data[pos..pos + total];
        let h = match BatchHeader::parse(batch) {
            Ok(h) => h,
            Err(e) => {
                let _ = writeln!(out, "position: {pos} unreadable header: {e}");
                break;
            }
        };
        let crc_ok = h.magic == 2 && record_batch::compute_crc(batch) == h.crc;
        let _ = writeln!(
            out,
            "baseOffset: {} lastOffset: {} count: {} position: {} size: {} magic: {} \
             firstTimestamp: {} maxTimestamp: {} timestampType: {} producerId: {} \
             producerEpoch: {} baseSequence: {} isTransactional: {} isControl: {} \
             partitionLeaderEpoch: {} compresscodec: {} crc: {} isValid: {}",
            h.base_offset,
            h.last_offset(),
            h.records_count,
            pos,
            total,
            h.magic,
            h.base_timestamp,
            h.max_timestamp,
            if h.is_log_append_time() {
                "LOG_APPEND_TIME"
            } else {
                "CREATE_TIME"
            },
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.is_transactional(),
            h.is_control(),
            h.partition_leader_epoch,
            h.compression_name(),
            h.crc,
            crc_ok
        );
        pos += total.max(LOG_OVERHEAD);
    }
    out
}

/// Prints the dump of `path` to stdout.
pub fn dump_log(path: &Path) -> io::Result<()> {
    let mut data = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut data)?;
    println!("Dumping {}", path.display());
    print!("{}", dump_bytes(&data));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_valid_and_corrupt_batches() {
        let mut a = record_batch::build_batch(0, &[(10, None, b"x"), (20, None, b"y")], 7, 1, 5);
        let mut b = record_batch::build_batch(2, &[(30, None, b"z")], -1, -1, -1);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        a.extend_from_slice(&b);
        a.extend_from_slice(&[0, 0, 0]);
        let s = dump_bytes(&a);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3, "{s}");
        assert!(lines[0].starts_with("baseOffset: 0 lastOffset: 1 count: 2 position: 0"));
        assert!(lines[0].contains("firstTimestamp: 10 maxTimestamp: 20"));
        assert!(lines[0].contains("producerId: 7 producerEpoch: 1 baseSequence: 5"));
        assert!(lines[0].contains("compresscodec: none"));
        assert!(lines[0].ends_with("isValid: true"));
        assert!(lines[1].starts_with("baseOffset: 2 lastOffset: 2 count: 1"));
        assert!(lines[1].ends_with("isValid: false"));
        assert!(lines[2].contains("trailing 3 bytes"));
    }
}
