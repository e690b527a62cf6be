use super::*;

const T0: i64 = 1_000_000;

fn init(m: &mut TxnMetadata, timeout: i32, expected: Option<(i64, i16)>, now: i64) -> (i64, i16) {
    match m.plan_init(timeout, expected, now).unwrap() {
        InitPlan::Bump(t) => {
            m.apply(t).unwrap();
            (m.producer_id, m.producer_epoch)
        }
        other => panic!("expected a bump, got {other:?}"),
    }
}

fn tp(t: &str, p: i32) -> (String, i32) {
    (t.to_string(), p)
}

fn add(m: &mut TxnMetadata, parts: &[(String, i32)], now: i64) {
    let (pid, e) = (m.producer_id, m.producer_epoch);
    if let Some(t) = m.plan_add(pid, e, parts, &[], now).unwrap() {
        m.apply(t).unwrap();
    }
}

fn end(m: &mut TxnMetadata, commit: bool, now: i64) {
    let (pid, e) = (m.producer_id, m.producer_epoch);
    match m.plan_end(pid, e, commit, now).unwrap() {
        EndPlan::Prepare(t) => m.apply(t).unwrap(),
        EndPlan::AlreadyDone => panic!("nothing to end"),
    }
    let done = m.completed(now).unwrap();
    m.apply(done).unwrap();
}

#[test]
fn state_ids_and_names_round_trip() {
    for s in ALL_STATES {
        assert_eq!(TxnState::from_id(s.id()), Some(s));
        assert_eq!(TxnState::from_name(s.name()), Some(s));
    }
    assert_eq!(TxnState::from_id(8), None);
    assert_eq!(TxnState::from_name("ongoing"), None);
}

#[test]
fn legal_transitions_are_kafkas() {
    use TxnState::*;
    assert!(Ongoing.can_follow(Empty) && Ongoing.can_follow(CompleteAbort));
    assert!(PrepareCommit.can_follow(Ongoing) && !PrepareCommit.can_follow(Empty));
    assert!(CompleteCommit.can_follow(PrepareCommit) && !CompleteCommit.can_follow(PrepareAbort));
    assert!(PrepareAbort.can_follow(PrepareEpochFence));
    assert!(!Dead.can_follow(Ongoing) && Dead.can_follow(CompleteCommit));
    let mut m = TxnMetadata::new("t", 7, 60_000, T0);
    let bad = TxnMetadata {
        state: CompleteCommit,
        ..m.clone()
    };
    assert_eq!(m.apply(bad), Err(ResponseError::InvalidTxnState));
    assert_eq!(m.state, Empty);
}

#[test]
fn init_add_commit_cycle() {
    let mut m = TxnMetadata::new("t", 7, 60_000, T0);
    assert_eq!(init(&mut m, 60_000, None, T0), (7, 0));
    add(&mut m, &[tp("a", 0), tp("b", 1)], T0 + 5);
    assert_eq!(m.state, TxnState::Ongoing);
    assert_eq!(m.start_ms, T0 + 5);
    // Adding what is there already changes nothing.
    assert_eq!(m.plan_add(7, 0, &[tp("a", 0)], &[], T0 + 6), Ok(None));
    // A second add keeps the start time.
    add(&mut m, &[tp("c", 2)], T0 + 7);
    assert_eq!(m.start_ms, T0 + 5);
    assert_eq!(m.partitions.len(), 3);
    assert_eq!(m.verify(7, 0, "a", 0), Ok(()));
    assert_eq!(m.verify(7, 0, "a", 1), Err(ResponseError::InvalidTxnState));
    end(&mut m, true, T0 + 10);
    assert_eq!(m.state, TxnState::CompleteCommit);
    assert!(m.partitions.is_empty());
    // A retried commit succeeds, an abort of it is refused.
    assert_eq!(m.plan_end(7, 0, true, T0 + 11), Ok(EndPlan::AlreadyDone));
    assert_eq!(
        m.plan_end(7, 0, false, T0 + 11),
        Err(ResponseError::InvalidTxnState)
    );
    // The next transaction starts anew.
    add(&mut m, &[tp("a", 0)], T0 + 20);
    assert_eq!(m.start_ms, T0 + 20);
    assert_eq!(m.partitions.len(), 1);
}

#[test]
fn errors_for_wrong_producer_epoch_and_state() {
    let mut m = TxnMetadata::new("t", 7, 60_000, T0);
    init(&mut m, 60_000, None, T0);
    init(&mut m, 60_000, None, T0);
    assert_eq!(m.producer_epoch, 1);
    assert_eq!(
        m.plan_add(8, 1, &[tp("a", 0)], &[], T0),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    assert_eq!(
        m.plan_add(7, 0, &[tp("a", 0)], &[], T0),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        m.plan_end(7, 0, true, T0),
        Err(ResponseError::ProducerFenced)
    );
    // EndTxn with nothing ongoing.
    assert_eq!(
        m.plan_end(7, 1, true, T0),
        Err(ResponseError::InvalidTxnState)
    );
    add(&mut m, &[tp("a", 0)], T0);
    let (pid, e) = (m.producer_id, m.producer_epoch);
    let EndPlan::Prepare(t) = m.plan_end(pid, e, true, T0).unwrap() else {
        panic!()
    };
    m.apply(t).unwrap();
    assert_eq!(
        m.plan_end(pid, e, true, T0),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(
        m.plan_end(pid, e, false, T0),
        Err(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        m.plan_add(pid, e, &[tp("b", 0)], &[], T0),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(
        m.plan_init(1000, None, T0),
        Err(ResponseError::ConcurrentTransactions)
    );
    let mut pending = m.clone();
    pending.pending = true;
    assert_eq!(
        pending.plan_end(pid, e, true, T0),
        Err(ResponseError::ConcurrentTransactions)
    );
}

#[test]
fn new_producer_instance_aborts_the_ongoing_transaction_then_bumps() {
    let mut m = TxnMetadata::new("t", 7, 60_000, T0);
    init(&mut m, 60_000, None, T0);
    add(&mut m, &[tp("a", 0)], T0);
    assert_eq!(m.plan_init(60_000, None, T0), Ok(InitPlan::AbortOngoing));
    let fence = m.fence_abort(T0 + 1).unwrap();
    assert_eq!(fence.state, TxnState::PrepareAbort);
    assert_eq!(fence.producer_epoch, 1, "markers carry the bumped epoch");
    m.apply(fence).unwrap();
    let done = m.completed(T0 + 2).unwrap();
    m.apply(done).unwrap();
    assert_eq!(m.state, TxnState::CompleteAbort);
    assert_eq!(init(&mut m, 60_000, None, T0 + 3), (7, 2));
    // The first instance is fenced.
    assert_eq!(
        m.plan_add(7, 0, &[tp("a", 0)], &[], T0),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn kip360_expected_epoch_checks_and_retries() {
    let mut m = TxnMetadata::new("t", 7, 60_000, T0);
    init(&mut m, 60_000, None, T0);
    // The producer asks for a bump naming its current epoch.
    assert_eq!(init(&mut m, 60_000, Some((7, 0)), T0), (7, 1));
    assert_eq!(m.last_producer_epoch, 0);
    // Its answer was lost: the retry names epoch 0 again and gets the same epoch.
    assert_eq!(init(&mut m, 60_000, Some((7, 0)), T0), (7, 1));
    // A stale epoch is fenced, an unknown producer id too.
    assert_eq!(
        m.plan_init(60_000, Some((7, 5)), T0),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        m.plan_init(60_000, Some((99, 1)), T0),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn epoch_exhaustion_rotates_the_producer_id() {
    let mut m = TxnMetadata::new("t", 7, 60_000, T0);
    m.producer_epoch = i16::MAX - 1;
    assert_eq!(m.plan_init(60_000, None, T0), Ok(InitPlan::Rotate));
    let old = Some((7, i16::MAX - 1));
    assert_eq!(m.plan_init(60_000, old, T0), Ok(InitPlan::Rotate));
    let r = m.rotate(8, 60_000, true, T0);
    assert_eq!(
        (r.producer_id, r.producer_epoch, r.prev_producer_id),
        (8, 0, 7)
    );
    m.apply(r).unwrap();
    // A KIP-360 retry from the old id with its exhausted epoch gets the same answer.
    let InitPlan::Bump(again) = m.plan_init(60_000, old, T0).unwrap() else {
        panic!("a retry is a bump")
    };
    assert_eq!((again.producer_id, again.producer_epoch), (8, 0));
}

#[test]
fn timeout_and_expiry_follow_the_injected_clock() {
    let mut m = TxnMetadata::new("t", 7, 1_000, T0);
    init(&mut m, 1_000, None, T0);
    assert!(!m.expired(T0 + 999, 1_000));
    assert!(m.expired(T0 + 1_000, 1_000));
    add(&mut m, &[tp("a", 0)], T0);
    assert!(
        !m.expired(T0 + 10_000, 1_000),
        "an ongoing id never expires"
    );
    assert!(!m.timed_out(T0 + 1_000));
    assert!(m.timed_out(T0 + 1_001));
    assert_eq!(m.next_deadline(1_000), Some(T0 + 1_001));
    let abort = m.fence_abort(T0 + 1_001).unwrap();
    m.apply(abort).unwrap();
    assert!(
        !m.timed_out(T0 + 5_000),
        "a prepared transaction is being completed"
    );
    assert_eq!(m.next_deadline(1_000), None);
}
