use super::*;

fn sample() -> TxnMetadata {
    let mut m = TxnMetadata::new("my-txn ✓", 4242, 60_000, 1_700_000_000_000);
    m.producer_epoch = 3;
    m.prev_producer_id = 41;
    m.state = TxnState::PrepareCommit;
    m.start_ms = 1_700_000_000_100;
    m.last_update_ms = 1_700_000_000_200;
    m.partitions.insert(("orders".into(), 0));
    m.partitions.insert(("orders".into(), 3));
    m.partitions.insert(("audit".into(), 1));
    m.groups.insert("billing".into());
    m
}

#[test]
fn key_round_trips_and_matches_kafka_layout() {
    let k = encode_key("tx");
    assert_eq!(&k[..], &[0, 0, 0, 2, b't', b'x']);
    assert_eq!(decode_key(&k), Ok(Some("tx".to_string())));
    assert_eq!(decode_key(&[0, 1, 0, 0]), Ok(None));
    assert_eq!(decode_key(&[0, 0, 0, 9, b'x']), Err(DecodeError::Truncated));
}

#[test]
fn value_round_trips() {
    let m = sample();
    let v = encode_value(&m);
    assert_eq!(decode_value(&m.transactional_id, &v), Ok(m));
}

#[test]
fn value_layout_is_kafkas_v1() {
    let mut m = TxnMetadata::new("t", 1, 2, 5);
    m.producer_epoch = 0;
    m.start_ms = -1;
    m.partitions.insert(("a".into(), 7));
    let v = encode_value(&m);
    let mut want = vec![0, 1]; // version 1
    want.extend(1i64.to_be_bytes());
    want.extend(0i16.to_be_bytes());
    want.extend(2i32.to_be_bytes());
    want.push(0); // Empty
    want.extend([2, 2, b'a', 2]); // one topic "a", one partition
    want.extend(7i32.to_be_bytes());
    want.push(0); // topic's tagged fields
    want.extend(5i64.to_be_bytes());
    want.extend((-1i64).to_be_bytes());
    want.push(0); // no tagged fields
    assert_eq!(&v[..], &want[..]);
}

#[test]
fn reads_version_0_values() {
    // Kafka's v0 layout: i16 strings and i32 array lengths, no tagged fields.
    let mut b = vec![0, 0];
    b.extend(9i64.to_be_bytes());
    b.extend(2i16.to_be_bytes());
    b.extend(1000i32.to_be_bytes());
    b.push(1); // Ongoing
    b.extend(1i32.to_be_bytes());
    b.extend(1i16.to_be_bytes());
    b.push(b'z');
    b.extend(1i32.to_be_bytes());
    b.extend(4i32.to_be_bytes());
    b.extend(11i64.to_be_bytes());
    b.extend(10i64.to_be_bytes());
    let m = decode_value("t", &b).unwrap();
    assert_eq!(
        (m.producer_id, m.producer_epoch, m.timeout_ms),
        (9, 2, 1000)
    );
    assert_eq!(m.state, TxnState::Ongoing);
    assert!(m.partitions.contains(&("z".to_string(), 4)));
    assert_eq!((m.last_update_ms, m.start_ms), (11, 10));
}

#[test]
fn bad_values_are_errors_not_panics() {
    let v = encode_value(&sample());
    for cut in 0..v.len() {
        assert!(decode_value("t", &v[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad_state = v.to_vec();
    bad_state[2 + 8 + 2 + 4] = 42;
    assert_eq!(decode_value("t", &bad_state), Err(DecodeError::State(42)));
    assert_eq!(decode_value("t", &[0, 9]), Err(DecodeError::Version(9)));
}

#[test]
fn log_reloads_last_value_and_tombstones_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let mut cfg = TxnLogConfig::new(&path);
            cfg.compact_min_records = 20;
            let (log, loaded) = TxnLog::load(cfg.clone(), |_| true).await.unwrap();
            assert!(loaded.is_empty());
            let mut m = sample();
            let p = crate::txn::log_partition(&m.transactional_id, 50);
            for e in 0..30 {
                m.producer_epoch = e;
                log.write(p, &m).await.unwrap();
            }
            let mut gone = TxnMetadata::new("gone", 1, 1, 1);
            let pg = crate::txn::log_partition("gone", 50);
            log.write(pg, &gone).await.unwrap();
            gone.state = TxnState::Dead;
            log.write(pg, &gone).await.unwrap();
            // Let the background rewrite run.
            for _ in 0..100 {
                if log.log_records(p) < 30 {
                    break;
                }
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert!(log.log_records(p) < 30, "rewritten: {}", log.log_records(p));
            log.close().await.unwrap();
            let (_log, loaded) = TxnLog::load(cfg, |_| true).await.unwrap();
            assert_eq!(loaded, vec![m]);
        })
        .unwrap()
        .join()
        .unwrap();
}
