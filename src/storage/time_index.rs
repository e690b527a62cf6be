//! The time index (`.timeindex`): Kafka's 12-byte entries, timestamp `i64` BE then relative offset
//! `u32` BE. An entry maps "max timestamp seen so far in this segment" to the last offset of the
//! (first) batch that carried it: Kafka's "shallow" offset of the max timestamp, not the record's
//! own offset, which would need the records decoded on append. Kafka appends an entry together
//! with each offset-index entry, and on roll/close, but only when the timestamp is greater than
//! the last entry's (`maybeAppend`). The last entry is therefore the segment's max timestamp and
//! its batch, which is how a reopened segment knows them without a scan.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a `.timeindex` file; stops at the first non-increasing entry (zero tail). Returns
    /// whether it looked damaged (bad length or non-zero garbage).
    pub fn parse(bytes: &[u8]) -> (Self, bool) {
        let mut damaged = !bytes.len().is_multiple_of(12);
        let mut entries: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / 12);
        for chunk in bytes.chunks_exact(12) {
            let e = TimeEntry {
                timestamp: i64::from_be_bytes(chunk[0..8].try_into().expect("8")),
                relative_offset: u32::from_be_bytes(chunk[8..12].try_into().expect("4")),
            };
            if let Some(last) = entries.last()
                && (e.timestamp <= last.timestamp || e.relative_offset < last.relative_offset)
            {
                if e != (TimeEntry {
                    timestamp: 0,
                    relative_offset: 0,
                }) {
                    damaged = true;
                }
                break;
            }
            entries.push(e);
        }
        (TimeIndex { entries }, damaged)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.encode_from(0)
    }

    pub fn encode_from(&self, from: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for e in self.entries.iter().skip(from) {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Kafka's `maybeAppend`: only when `timestamp` grows past the last entry's (an empty index
    /// behaves as if its last timestamp were -1, `NO_TIMESTAMP`).
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) {
        let last_ts = self.entries.last().map_or(-1, |e| e.timestamp);
        if timestamp <= last_ts {
            return;
        }
        self.entries.push(TimeEntry {
            timestamp,
            relative_offset,
        });
    }

    /// Greatest entry with timestamp < `ts` (a safe starting point to search for the first
    /// batch whose max timestamp is >= `ts`).
    pub fn lookup_before(&self, ts: i64) -> Option<TimeEntry> {
        let i = self.entries.partition_point(|e| e.timestamp < ts);
        if i == 0 {
            None
        } else {
            Some(self.entries[i - 1])
        }
    }

    /// Drops entries whose offset is >= `rel` (tail truncation).
    pub fn truncate_to_offset(&mut self, rel: u32) {
        let i = self.entries.partition_point(|e| e.relative_offset < rel);
        self.entries.truncate(i);
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * 12
    }
    pub fn shrink(&mut self) {
        self.entries.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maybe_append_only_when_growing() {
        let mut t = TimeIndex::new();
        t.maybe_append(100, 3);
        t.maybe_append(100, 7);
        t.maybe_append(90, 8);
        t.maybe_append(150, 9);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup_before(100), None);
        assert_eq!(t.lookup_before(101).unwrap().relative_offset, 3);
        let bytes = t.encode();
        assert_eq!(&bytes[..12], &[0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 3]);
        let (p, damaged) = TimeIndex::parse(&bytes);
        assert!(!damaged);
        assert_eq!(p.entries(), t.entries());
    }
}
