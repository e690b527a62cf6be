//! Which shard owns a partition.
//!
//! [`owner`] maps `(topic, partition, n_shards)` to a shard with a pure function (FNV-1a of the topic
//! name plus the partition index, modulo `n`), so consecutive partitions of one topic land on consecutive
//! shards and a restart with a different core count simply redistributes partition directories: any
//! shard can open any partition.

/// The shard that owns `(topic, partition)` among `n_shards`: pure and stable across restarts.
pub fn owner(topic: &str, partition: i32, n_shards: usize) -> usize {
    if n_shards <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h % n_shards as u64) as usize + partition.max(0) as usize) % n_shards
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_pure_and_spreads_partitions() {
        assert_eq!(owner("t", 5, 1), 0);
        let a: Vec<usize> = (0..8).map(|p| owner("orders", p, 4)).collect();
        let b: Vec<usize> = (0..8).map(|p| owner("orders", p, 4)).collect();
        assert_eq!(a, b);
        for s in 0..4 {
            assert_eq!(a.iter().filter(|&&x| x == s).count(), 2);
        }
        assert!((0..100).all(|p| owner("x", p, 3) < 3));
    }
}
