//! The loadgen header carried at the start of every record value.
//!
//! ```text
//! 0..4   magic "RBLG"
//! 4..8   run id (u32, big endian) — tells this run's messages from older data in the topic
//! 8..16  scheduled send time, ns on the Unix scale (u64) — end-to-end latency is measured from it
//! 16..20 producer id (u32)
//! 20..28 sequence number per (producer, partition), from 0 (u64) — order/gap/duplicate checks
//! 28..32 reserved (0)
//! ```
//! The rest of the value is filler. The record timestamp (ms) is the scheduled time too, so other
//! tools see it, but the value keeps ns precision.

pub const MAGIC: [u8; 4] = *b"RBLG";
pub const HEADER_LEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    pub run_id: u32,
    pub scheduled_ns: u64,
    pub producer: u32,
    pub seq: u64,
}

impl MessageHeader {
    #[inline]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.run_id.to_be_bytes());
        b[8..16].copy_from_slice(&self.scheduled_ns.to_be_bytes());
        b[16..20].copy_from_slice(&self.producer.to_be_bytes());
        b[20..28].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    /// `None` when the value is not a loadgen message.
    #[inline]
    pub fn decode(v: &[u8]) -> Option<Self> {
        if v.len() < HEADER_LEN || v[0..4] != MAGIC {
            return None;
        }
        Some(MessageHeader {
            run_id: u32::from_be_bytes(v[4..8].try_into().ok()?),
            scheduled_ns: u64::from_be_bytes(v[8..16].try_into().ok()?),
            producer: u32::from_be_bytes(v[16..20].try_into().ok()?),
            seq: u64::from_be_bytes(v[20..28].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejects_foreign() {
        let h = MessageHeader {
            run_id: 7,
            scheduled_ns: 1 << 60,
            producer: 3,
            seq: 99,
        };
        let mut v = h.encode().to_vec();
        v.extend_from_slice(&[0xab; 10]);
        assert_eq!(MessageHeader::decode(&v), Some(h));
        assert_eq!(MessageHeader::decode(&v[..31]), None);
        v[0] = b'X';
        assert_eq!(MessageHeader::decode(&v), None);
    }
}
