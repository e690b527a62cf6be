//! Bad input, through the Produce API: a client may not write control batches (transaction
//! markers). Kafka answers `INVALID_RECORD` and writes nothing; so does Ringbolt, whatever the
//! batch's producer fields, and the partition keeps serving.

mod server_util;

use bytes::Bytes;
use ringbolt::protocol::record_batch::{ATTR_CONTROL, ATTRIBUTES_OFFSET, CRC_OFFSET, compute_crc};
use ringbolt::storage::txn::{TxnMarker, encode_marker};
use server_util::*;

/// `b` with the control attribute set (CRC fixed up).
fn as_control(b: Bytes) -> Bytes {
    let mut v = b.to_vec();
    let a = i16::from_be_bytes([v[ATTRIBUTES_OFFSET], v[ATTRIBUTES_OFFSET + 1]]) | ATTR_CONTROL;
    v[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&a.to_be_bytes());
    let crc = compute_crc(&v);
    v[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(v)
}

#[test]
fn produce_of_a_control_batch_is_invalid_record_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("t", 1, &[], 7).topics[0].error_code, 0);
    // A data batch turned control, and a well-formed COMMIT marker as the coordinator writes it.
    let marker = encode_marker(
        &TxnMarker {
            producer_id: 7,
            producer_epoch: 0,
            commit: true,
            coordinator_epoch: 0,
        },
        1_700_000_000_000,
    );
    // The marker without its transactional bit too (a plain control batch).
    let mut plain = marker.clone();
    plain[ATTRIBUTES_OFFSET + 1] &= !0x10;
    let crc = compute_crc(&plain);
    plain[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    for (what, records) in [
        (
            "data batch with the control bit",
            as_control(batch("v", 1, 1)),
        ),
        ("COMMIT marker", Bytes::from(marker)),
        ("non-transactional control batch", Bytes::from(plain)),
    ] {
        for version in [3, 9] {
            let (err, _) = c.produce("t", 0, -1, records.clone(), version);
            assert_eq!(err, 87, "{what}, Produce v{version}");
        }
    }
    let (err, hw, bytes) = c.fetch("t", 0, 0, 11);
    assert_eq!((err, hw, bytes.len()), (0, 0, 0));
    // The partition still takes data.
    assert_eq!(c.produce("t", 0, -1, batch("ok", 1, 1), 9), (0, 0));
    let (_, hw, _) = c.fetch("t", 0, 0, 11);
    assert_eq!(hw, 1);
    broker.shutdown().unwrap();
}
