//! A partition with readers keeps its last writes in memory (`storage/recent.rs`): reads of the
//! tail are answered from there with exactly the file's bytes; older reads go to the file.

mod storage_common;

use ringbolt::protocol::record_batch::validate_all;
use ringbolt::storage::FileSlice;
use ringbolt::storage::recent::{PER_PARTITION, shard_bytes};
use storage_common::{batch, with_new_log};

#[test]
fn tail_reads_come_from_memory_with_the_files_bytes() {
    with_new_log(|log, _dir| async move {
        // Before anyone reads, nothing is kept.
        log.append(batch(80, 190, 1000, 1)).await.unwrap();
        assert_eq!(shard_bytes(), 0);
        let first = log.read(0, 1 << 20).await.unwrap();
        assert!(first.slices.iter().all(|s| s.mem.is_none()));

        // Now the partition has a reader: ~24 writes of ~16 KiB, more than one cache holds.
        let mut infos = Vec::new();
        for i in 0..24 {
            infos.push(log.append(batch(80, 190, 2000 + i, i as u8)).await.unwrap());
        }
        assert!(shard_bytes() > 0 && shard_bytes() <= PER_PARTITION);

        // The last three batches: from memory, the same bytes as in the file, whole batches.
        let from = infos[21].base_offset + 3;
        let tail = log.read(from, 1 << 20).await.unwrap();
        assert_eq!(tail.slices.len(), 1);
        let s = &tail.slices[0];
        let mem = s.mem.as_ref().expect("answered from the tail cache");
        assert_eq!(mem.len(), s.len as usize);
        let on_disk = FileSlice::in_file(s.file.clone(), s.position, s.len)
            .read_to_vec()
            .unwrap();
        assert_eq!(&mem[..], &on_disk[..]);
        let hs = validate_all(mem).unwrap();
        assert_eq!(
            hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
            vec![
                infos[21].base_offset,
                infos[22].base_offset,
                infos[23].base_offset
            ]
        );

        // An early batch has left the cache: read from the file.
        let old = log.read(infos[1].base_offset, 20_000).await.unwrap();
        assert!(old.slices.iter().all(|s| s.mem.is_none()));
        assert_eq!(
            validate_all(&old.read_to_vec().unwrap()).unwrap()[0].base_offset,
            infos[1].base_offset
        );
        log.close().await.unwrap();
        assert_eq!(shard_bytes(), 0, "closing the log releases its cache");
    });
}

/// Fetch's byte limits on reads answered from memory: whole batches within the limit, at least
/// the first one, and the first batch's length reported (the Fetch handler uses it to tell
/// whether any batch fits what is left of a response without reading again).
#[test]
fn limited_tail_reads_are_whole_batches_with_the_first_batch_len() {
    with_new_log(|log, _dir| async move {
        log.append(batch(1, 6000, 1000, 1)).await.unwrap();
        let _ = log.read(0, 1 << 20).await.unwrap(); // a reader: later writes are kept
        let mut lens = Vec::new();
        for i in 0..4 {
            let b = batch(1, 10_000 + 1000 * i, 2000, i as u8);
            lens.push(b.len() as u32);
            log.append(b).await.unwrap();
        }
        async fn read(log: &ringbolt::storage::PartitionLog, first: u32, limit: u32) -> usize {
            let r = log.read(1, limit).await.unwrap();
            assert!(r.slices.iter().all(|s| s.mem.is_some()), "from memory");
            assert_eq!(r.first_batch_len, first);
            validate_all(&r.read_to_vec().unwrap()).unwrap().len()
        }
        let two = lens[0] + lens[1];
        assert_eq!(read(&log, lens[0], 1 << 20).await, 4);
        assert_eq!(read(&log, lens[0], two).await, 2);
        assert_eq!(read(&log, lens[0], two - 1).await, 1);
        assert_eq!(
            read(&log, lens[0], 10).await,
            1,
            "one batch even past the limit"
        );
        assert_eq!(read(&log, lens[0], 0).await, 1);
        let empty = log.read(5, 1 << 20).await.unwrap();
        assert_eq!((empty.slices.len(), empty.first_batch_len), (0, 0));
        log.close().await.unwrap();
    });
}
