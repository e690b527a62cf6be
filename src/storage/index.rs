//! The sparse offset index (`.index`): Kafka's 8-byte entries, relative offset `u32` BE then file
//! position `u32` BE, strictly increasing in both.
//!
//! Kafka appends an entry for a batch when more than `index.interval.bytes` were appended since the
//! previous entry (checked *before* adding the batch, so a segment's first batch never gets one);
//! the entry names the batch's *last* offset and its *start* position. A lookup for offset `o`
//! takes the greatest entry with offset <= `o` and scans batch headers forward from its position.
//!
//! Entries live in memory as a `Vec` (8 bytes each: a full 1 GiB segment at the default interval is
//! ~2 MiB); sealed segments load theirs lazily and drop them when cold (see `segment.rs`).

/// One entry, offsets relative to the segment's base offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<IndexEntry>,
}

impl OffsetIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses an `.index` file. Stops at the first entry that is not strictly increasing (a
    /// zero-filled preallocated tail, as Kafka leaves in an active index, ends the list) or that
    /// points at or beyond `log_len`. Returns the index and whether the file looked damaged
    /// (length not a multiple of 8, or entries dropped other than a zero tail).
    pub fn parse(bytes: &[u8], log_len: u64) -> (Self, bool) {
        let mut damaged = !bytes.len().is_multiple_of(8);
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / 8);
        for chunk in bytes.chunks_exact(8) {
            let e = IndexEntry {
                relative_offset: u32::from_be_bytes(chunk[0..4].try_into().expect("4")),
                position: u32::from_be_bytes(chunk[4..8].try_into().expect("4")),
            };
            if let Some(last) = entries.last()
                && (e.relative_offset <= last.relative_offset || e.position <= last.position)
            {
                if e != (IndexEntry {
                    relative_offset: 0,
                    position: 0,
                }) {
                    damaged = true;
                }
                break;
            }
            if e.position as u64 >= log_len {
                damaged = true;
                break;
            }
            entries.push(e);
        }
        (OffsetIndex { entries }, damaged)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Encodes entries from `from` on (for incremental index file writes).
    pub fn encode_from(&self, from: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for e in self.entries.iter().skip(from) {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    pub fn append(&mut self, relative_offset: u32, position: u32) {
        if let Some(last) = self.entries.last()
            && (relative_offset <= last.relative_offset || position <= last.position)
        {
            return;
        }
        self.entries.push(IndexEntry {
            relative_offset,
            position,
        });
    }

    /// Greatest entry with relative offset <= `rel`.
    pub fn lookup(&self, rel: u32) -> Option<IndexEntry> {
        let i = self.entries.partition_point(|e| e.relative_offset <= rel);
        if i == 0 {
            None
        } else {
            Some(self.entries[i - 1])
        }
    }

    /// Greatest entry with position <= `pos`.
    pub fn lookup_position(&self, pos: u32) -> Option<IndexEntry> {
        let i = self.entries.partition_point(|e| e.position <= pos);
        if i == 0 {
            None
        } else {
            Some(self.entries[i - 1])
        }
    }

    /// Drops entries with position >= `pos` (tail truncation).
    pub fn truncate_to_position(&mut self, pos: u32) {
        let i = self.entries.partition_point(|e| e.position < pos);
        self.entries.truncate(i);
    }

    pub fn truncate_entries(&mut self, n: usize) {
        self.entries.truncate(n);
    }

    pub fn last(&self) -> Option<IndexEntry> {
        self.entries.last().copied()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }
    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * 8
    }
    pub fn shrink(&mut self) {
        self.entries.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_parse() {
        let mut idx = OffsetIndex::new();
        idx.append(5, 4200);
        idx.append(9, 8400);
        idx.append(9, 9000); // not increasing: ignored
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(4), None);
        assert_eq!(idx.lookup(5).unwrap().position, 4200);
        assert_eq!(idx.lookup(8).unwrap().position, 4200);
        assert_eq!(idx.lookup(100).unwrap().position, 8400);
        let mut bytes = idx.encode();
        assert_eq!(
            bytes,
            [0, 0, 0, 5, 0, 0, 0x10, 0x68, 0, 0, 0, 9, 0, 0, 0x20, 0xd0]
        );
        bytes.extend_from_slice(&[0; 16]); // Kafka-style preallocated zero tail
        let (p, damaged) = OffsetIndex::parse(&bytes, 10_000);
        assert!(!damaged);
        assert_eq!(p.entries(), idx.entries());
        let (p, damaged) = OffsetIndex::parse(&bytes, 8000);
        assert!(damaged, "entry beyond the log end");
        assert_eq!(p.len(), 1);
    }
}
