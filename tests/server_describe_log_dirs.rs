//! DescribeLogDirs over the wire (v1–v4): the data dir as the one log dir, every partition of
//! every shard with its size (the bytes of the batches stored), offset lag 0, not a future
//! replica; Kafka's answer to a request naming partitions; the volume's sizes in v4.

mod server_util;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::describe_log_dirs_request::{
    DescribableLogDirTopic, DescribeLogDirsRequest,
};
use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResponse;
use server_util::*;

/// (topic, [(partition, size)]) of the one result, topics and partitions sorted.
fn listing(r: &DescribeLogDirsResponse) -> Vec<(String, Vec<(i32, i64)>)> {
    assert_eq!(r.results.len(), 1);
    let res = &r.results[0];
    assert_eq!(res.error_code, 0);
    let mut out: Vec<(String, Vec<(i32, i64)>)> = res
        .topics
        .iter()
        .map(|t| {
            let mut parts: Vec<(i32, i64)> = t
                .partitions
                .iter()
                .map(|p| {
                    assert_eq!(p.offset_lag, 0);
                    assert!(!p.is_future_key);
                    (p.partition_index, p.partition_size)
                })
                .collect();
            parts.sort();
            (t.name.0.as_str().to_string(), parts)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_partition_of_every_shard_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("a", 3, &[], 7).topics[0].error_code, 0);
    assert_eq!(c.create_topic("b", 1, &[], 7).topics[0].error_code, 0);
    let mut sizes = [0i64; 3];
    for (p, n) in [(0, 3), (2, 5), (0, 2)] {
        let b = batch("v", n, 1_000);
        sizes[p as usize] += b.len() as i64;
        assert_eq!(c.produce("a", p, -1, b, 9).0, 0);
    }
    let data_dir = std::fs::canonicalize(dir.path()).unwrap();
    for v in 1..=4 {
        let r: DescribeLogDirsResponse = c.call(
            ApiKey::DescribeLogDirs,
            v,
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        assert_eq!(r.error_code, 0);
        assert_eq!(
            r.results[0].log_dir.as_str(),
            data_dir.to_str().unwrap(),
            "v{v}"
        );
        assert_eq!(
            listing(&r),
            vec![
                ("a".to_string(), vec![(0, sizes[0]), (1, 0), (2, sizes[2])]),
                ("b".to_string(), vec![(0, 0)]),
            ],
            "v{v}"
        );
        let (total, usable) = (r.results[0].total_bytes, r.results[0].usable_bytes);
        if v >= 4 {
            assert!(
                total > 0 && usable > 0 && usable <= total,
                "{total} {usable}"
            );
        } else {
            assert_eq!((total, usable), (-1, -1), "not on the wire before v4");
        }
    }

    // Named partitions: only those the broker has; topics left with none are not listed.
    let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(tn("a"))
            .with_partitions(vec![2, 0, 9]),
        DescribableLogDirTopic::default()
            .with_topic(tn("nope"))
            .with_partitions(vec![0]),
    ]));
    let r: DescribeLogDirsResponse = c.call(ApiKey::DescribeLogDirs, 4, &req);
    assert_eq!(
        listing(&r),
        vec![("a".to_string(), vec![(0, sizes[0]), (2, sizes[2])]),]
    );
    drop(c);
    broker.shutdown().unwrap();
}
