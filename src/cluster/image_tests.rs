//! Tests of [`ClusterImage::apply`]: every command's success and refusal, and invariants over
//! random command sequences.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use proptest::prelude::*;

use super::*;
use crate::metadata::MAX_PARTITIONS;

/// Applies `cmd` at the next index.
fn step(img: &mut ClusterImage, cmd: MetaCommand) -> MetaResponse {
    let index = img.applied_index + 1;
    img.apply(index, &cmd)
}

fn register(id: i32, incarnation: &str) -> MetaCommand {
    MetaCommand::RegisterBroker {
        id,
        incarnation: incarnation.to_string(),
        host: "127.0.0.1".to_string(),
        port: 9092 + id,
        rack: None,
    }
}

fn code(r: &MetaResponse) -> i16 {
    match r {
        MetaResponse::Error { code, .. } => *code,
        _ => 0,
    }
}

fn epoch_of(img: &ClusterImage, id: i32) -> u64 {
    img.brokers[&id].epoch
}

/// Registers and unfences brokers `ids`.
fn cluster(ids: &[i32]) -> ClusterImage {
    let mut img = ClusterImage::default();
    for &id in ids {
        assert_eq!(
            step(&mut img, register(id, &format!("inc-{id}"))),
            MetaResponse::Ok
        );
        let epoch = epoch_of(&img, id);
        assert_eq!(
            step(&mut img, MetaCommand::UnfenceBroker { id, epoch }),
            MetaResponse::Ok
        );
    }
    img
}

fn create(name: &str, assignments: Vec<Vec<i32>>) -> MetaCommand {
    MetaCommand::CreateTopic {
        name: name.to_string(),
        id: uuid::Uuid::from_u128(name.bytes().fold(1u128, |a, b| a * 31 + u128::from(b))),
        assignments,
        configs: BTreeMap::new(),
    }
}

fn fence(img: &mut ClusterImage, id: i32) -> MetaResponse {
    let epoch = epoch_of(img, id);
    step(img, MetaCommand::FenceBroker { id, epoch })
}

fn unfence(img: &mut ClusterImage, id: i32) -> MetaResponse {
    let epoch = epoch_of(img, id);
    step(img, MetaCommand::UnfenceBroker { id, epoch })
}

fn part(img: &ClusterImage, topic: &str, p: i32) -> PartitionState {
    img.partition(topic, p).cloned().expect("partition exists")
}

fn alter(img: &ClusterImage, topic: &str, p: i32, isr: Vec<i32>) -> MetaCommand {
    let s = part(img, topic, p);
    MetaCommand::AlterPartition {
        topic: topic.to_string(),
        partition: p,
        leader: s.leader,
        leader_epoch: s.leader_epoch,
        partition_epoch: s.partition_epoch,
        isr,
    }
}

/// AlterPartition from the current leader at the current epochs, applied.
fn alter_now(img: &mut ClusterImage, topic: &str, p: i32, isr: Vec<i32>) -> MetaResponse {
    let cmd = alter(img, topic, p, isr);
    step(img, cmd)
}

fn elect(topic: &str, p: i32, preferred: bool, unclean: bool) -> MetaCommand {
    MetaCommand::ElectLeader {
        topic: topic.to_string(),
        partition: p,
        preferred,
        unclean,
    }
}

// ---- brokers ----

#[test]
fn register_new_broker_is_fenced_with_epoch_index() {
    let mut img = ClusterImage::default();
    assert_eq!(img.apply(7, &register(1, "a")), MetaResponse::Ok);
    let b = &img.brokers[&1];
    assert!(b.fenced);
    assert_eq!(b.epoch, 7);
    assert_eq!(b.port, 9093);
    assert!(!b.in_controlled_shutdown);
    assert_eq!(img.applied_index, 7);
    assert!(img.live_broker_ids().is_empty());
}

#[test]
fn register_same_incarnation_is_idempotent() {
    let mut img = cluster(&[1]);
    let before = img.brokers[&1].clone();
    assert_eq!(step(&mut img, register(1, "inc-1")), MetaResponse::Ok);
    assert_eq!(
        img.brokers[&1], before,
        "unchanged: still unfenced, same epoch"
    );
}

#[test]
fn register_new_incarnation_fences_and_leaves_isrs() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, create("t", vec![vec![1, 2, 3], vec![2, 3, 1]]));
    assert_eq!(step(&mut img, register(1, "restarted")), MetaResponse::Ok);
    let b = &img.brokers[&1];
    assert!(b.fenced);
    assert_eq!(b.epoch, img.applied_index);
    assert_eq!(b.incarnation, "restarted");
    let p0 = part(&img, "t", 0);
    assert_eq!(p0.leader, 2);
    assert_eq!(p0.isr, vec![2, 3]);
    assert_eq!((p0.leader_epoch, p0.partition_epoch), (1, 1));
    let p1 = part(&img, "t", 1);
    assert_eq!(p1.leader, 2);
    assert_eq!(p1.isr, vec![2, 3]);
    assert_eq!((p1.leader_epoch, p1.partition_epoch), (0, 1));
}

#[test]
fn register_rejects_bad_ids_and_ports() {
    let mut img = ClusterImage::default();
    let r = step(
        &mut img,
        MetaCommand::RegisterBroker {
            id: -1,
            incarnation: "x".into(),
            host: "h".into(),
            port: 1,
            rack: None,
        },
    );
    assert_eq!(code(&r), ResponseError::InvalidRequest.code());
    let r = step(
        &mut img,
        MetaCommand::RegisterBroker {
            id: 1,
            incarnation: "x".into(),
            host: "h".into(),
            port: 70000,
            rack: None,
        },
    );
    assert_eq!(code(&r), ResponseError::InvalidRequest.code());
    assert!(img.brokers.is_empty());
    assert_eq!(
        img.applied_index, 2,
        "refused entries still advance the applied index"
    );
}

#[test]
fn fence_and_unfence_check_the_broker_epoch() {
    let mut img = cluster(&[1]);
    let epoch = epoch_of(&img, 1);
    let stale = MetaCommand::FenceBroker {
        id: 1,
        epoch: epoch + 1,
    };
    assert_eq!(
        code(&step(&mut img, stale)),
        ResponseError::StaleBrokerEpoch.code()
    );
    assert!(!img.brokers[&1].fenced);
    let stale = MetaCommand::UnfenceBroker { id: 1, epoch: 0 };
    assert_eq!(
        code(&step(&mut img, stale)),
        ResponseError::StaleBrokerEpoch.code()
    );
    let unknown = MetaCommand::FenceBroker { id: 9, epoch };
    assert_eq!(
        code(&step(&mut img, unknown)),
        ResponseError::BrokerIdNotRegistered.code()
    );
    let shutdown = MetaCommand::BeginControlledShutdown { id: 1, epoch: 99 };
    assert_eq!(
        code(&step(&mut img, shutdown)),
        ResponseError::StaleBrokerEpoch.code()
    );
    assert_eq!(fence(&mut img, 1), MetaResponse::Ok);
    assert!(img.brokers[&1].fenced);
    assert_eq!(
        fence(&mut img, 1),
        MetaResponse::Ok,
        "fencing twice is harmless"
    );
    assert_eq!(unfence(&mut img, 1), MetaResponse::Ok);
    assert!(!img.brokers[&1].fenced);
}

#[test]
fn fencing_the_leader_elects_the_first_live_isr_member_in_replica_order() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, create("t", vec![vec![1, 3, 2]]));
    assert_eq!(part(&img, "t", 0).isr, vec![1, 3, 2]);
    fence(&mut img, 1);
    let p = part(&img, "t", 0);
    assert_eq!(p.leader, 3, "replica order, not broker id order");
    assert_eq!(p.isr, vec![3, 2]);
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 1));
    assert_eq!(img.partitions_led_by(3), vec![("t".to_string(), 0)]);
    assert!(!img.leads_any(1));
    assert_eq!(img.offline_replicas("t", 0), vec![1]);
}

#[test]
fn fencing_a_follower_only_shrinks_the_isr() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, create("t", vec![vec![1, 2, 3]]));
    fence(&mut img, 2);
    let p = part(&img, "t", 0);
    assert_eq!(p.leader, 1);
    assert_eq!(p.isr, vec![1, 3]);
    assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1));
}

#[test]
fn fencing_the_last_isr_member_leaves_the_partition_leaderless_with_its_isr() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, create("t", vec![vec![1, 2, 3]]));
    fence(&mut img, 2);
    fence(&mut img, 3);
    fence(&mut img, 1);
    let p = part(&img, "t", 0);
    assert_eq!(p.leader, NO_LEADER);
    assert_eq!(p.isr, vec![1], "the last in-sync copy stays recorded");
    assert_eq!(p.leader_epoch, 1);
    assert_eq!(p.partition_epoch, 3);
    // Brokers 2 and 3 coming back do not make the partition electable (they are behind)...
    unfence(&mut img, 2);
    unfence(&mut img, 3);
    assert_eq!(part(&img, "t", 0).leader, NO_LEADER);
    let r = step(&mut img, elect("t", 0, false, false));
    assert_eq!(code(&r), ResponseError::EligibleLeadersNotAvailable.code());
    // ...but the last ISR member coming back leads again.
    unfence(&mut img, 1);
    let p = part(&img, "t", 0);
    assert_eq!(p.leader, 1);
    assert_eq!(p.isr, vec![1]);
    assert_eq!((p.leader_epoch, p.partition_epoch), (2, 4));
}

#[test]
fn unfence_after_restart_elects_the_returning_last_isr_member() {
    let mut img = cluster(&[1]);
    step(&mut img, create("t", vec![vec![1]]));
    step(&mut img, register(1, "second-life"));
    let p = part(&img, "t", 0);
    assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
    unfence(&mut img, 1);
    let p = part(&img, "t", 0);
    assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (1, vec![1], 2));
}

#[test]
fn controlled_shutdown_moves_leadership_and_leaves_isrs() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, create("t", vec![vec![1, 2, 3], vec![2, 1, 3]]));
    step(&mut img, create("u", vec![vec![1]]));
    let epoch = epoch_of(&img, 1);
    let r = step(
        &mut img,
        MetaCommand::BeginControlledShutdown { id: 1, epoch },
    );
    assert_eq!(r, MetaResponse::Ok);
    assert!(img.brokers[&1].in_controlled_shutdown);
    let p0 = part(&img, "t", 0);
    assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
    assert_eq!((p0.leader_epoch, p0.partition_epoch), (1, 1));
    let p1 = part(&img, "t", 1);
    assert_eq!((p1.leader, p1.isr.clone()), (2, vec![2, 3]));
    assert_eq!((p1.leader_epoch, p1.partition_epoch), (0, 1));
    // The only in-sync copy keeps leading until the broker stops.
    let p2 = part(&img, "u", 0);
    assert_eq!((p2.leader, p2.isr.clone()), (1, vec![1]));
    assert_eq!((p2.leader_epoch, p2.partition_epoch), (0, 0));
    // A shutting-down broker is not elected.
    let r = step(&mut img, elect("t", 0, true, false));
    assert_eq!(code(&r), ResponseError::PreferredLeaderNotAvailable.code());
    // Re-applying is harmless and changes nothing more.
    let before = img.topics.clone();
    step(
        &mut img,
        MetaCommand::BeginControlledShutdown { id: 1, epoch },
    );
    assert_eq!(img.topics, before);
    // A restart clears the shutdown flag.
    step(&mut img, register(1, "again"));
    assert!(!img.brokers[&1].in_controlled_shutdown);
}

#[test]
fn controlled_shutdown_retried_moves_leadership_once_a_follower_is_in_sync() {
    let mut img = cluster(&[1, 2]);
    step(&mut img, create("t", vec![vec![1, 2]]));
    alter_now(&mut img, "t", 0, vec![1]);
    let epoch = epoch_of(&img, 1);
    step(
        &mut img,
        MetaCommand::BeginControlledShutdown { id: 1, epoch },
    );
    assert_eq!(part(&img, "t", 0).leader, 1);
    // The leader, although shutting down, can still grow its ISR with an eligible follower.
    let r = alter_now(&mut img, "t", 0, vec![1, 2]);
    assert!(matches!(r, MetaResponse::Partition(_)), "{r:?}");
    step(
        &mut img,
        MetaCommand::BeginControlledShutdown { id: 1, epoch },
    );
    let p = part(&img, "t", 0);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
}

// ---- topics ----

#[test]
fn create_topic_sets_leaders_isr_and_epochs() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, register(4, "fenced"));
    let r = step(&mut img, create("t", vec![vec![4, 2, 1], vec![3, 4, 1]]));
    assert_eq!(r, MetaResponse::Ok);
    let p0 = part(&img, "t", 0);
    assert_eq!(p0.replicas, vec![4, 2, 1]);
    assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 1]));
    assert_eq!((p0.leader_epoch, p0.partition_epoch), (0, 0));
    let p1 = part(&img, "t", 1);
    assert_eq!((p1.leader, p1.isr.clone()), (3, vec![3, 1]));
    assert!(img.partition("t", 2).is_none());
    assert!(img.partition("t", -1).is_none());
}

#[test]
fn create_topic_refusals() {
    let mut img = cluster(&[1, 2]);
    step(&mut img, register(3, "fenced"));
    step(&mut img, create("t", vec![vec![1]]));
    let cases = [
        (
            create("t", vec![vec![1]]),
            ResponseError::TopicAlreadyExists,
        ),
        (
            create("", vec![vec![1]]),
            ResponseError::InvalidTopicException,
        ),
        (create("u", vec![]), ResponseError::InvalidPartitions),
        (
            create("u", vec![vec![]]),
            ResponseError::InvalidReplicaAssignment,
        ),
        (
            create("u", vec![vec![1, 1]]),
            ResponseError::InvalidReplicaAssignment,
        ),
        (
            create("u", vec![vec![1, 9]]),
            ResponseError::InvalidReplicaAssignment,
        ),
        (
            create("u", vec![vec![1, 2], vec![1]]),
            ResponseError::InvalidReplicaAssignment,
        ),
        (
            create("u", vec![vec![3]]),
            ResponseError::InvalidReplicationFactor,
        ),
    ];
    for (cmd, err) in cases {
        let before = img.topics.clone();
        let r = step(&mut img, cmd.clone());
        assert_eq!(code(&r), err.code(), "{cmd:?} → {r:?}");
        assert_eq!(img.topics, before, "{cmd:?} changed the image");
    }
    let same_id = MetaCommand::CreateTopic {
        name: "other".into(),
        id: img.topics["t"].id,
        assignments: vec![vec![1]],
        configs: BTreeMap::new(),
    };
    assert_eq!(
        code(&step(&mut img, same_id)),
        ResponseError::InvalidRequest.code()
    );
    let nil = MetaCommand::CreateTopic {
        name: "other".into(),
        id: uuid::Uuid::nil(),
        assignments: vec![vec![1]],
        configs: BTreeMap::new(),
    };
    assert_eq!(
        code(&step(&mut img, nil)),
        ResponseError::InvalidRequest.code()
    );
}

#[test]
fn delete_topic_and_configs() {
    let mut img = cluster(&[1]);
    step(&mut img, create("t", vec![vec![1]]));
    let configs: BTreeMap<String, String> =
        [("cleanup.policy".to_string(), "compact".to_string())].into();
    let set = MetaCommand::SetTopicConfigs {
        name: "t".into(),
        configs: configs.clone(),
    };
    assert_eq!(step(&mut img, set), MetaResponse::Ok);
    assert_eq!(img.topics["t"].configs, configs);
    let set = MetaCommand::SetTopicConfigs {
        name: "x".into(),
        configs,
    };
    assert_eq!(
        code(&step(&mut img, set)),
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        step(&mut img, MetaCommand::DeleteTopic { name: "t".into() }),
        MetaResponse::Ok
    );
    assert!(img.topics.is_empty());
    let r = step(&mut img, MetaCommand::DeleteTopic { name: "t".into() });
    assert_eq!(code(&r), ResponseError::UnknownTopicOrPartition.code());
    // The name (and a new id) can be used again.
    assert_eq!(step(&mut img, create("t", vec![vec![1]])), MetaResponse::Ok);
}

#[test]
fn create_partitions_appends_with_the_same_replication_factor() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, create("t", vec![vec![1, 2]]));
    let add = |a: Vec<Vec<i32>>| MetaCommand::CreatePartitions {
        name: "t".into(),
        assignments: a,
    };
    assert_eq!(
        step(&mut img, add(vec![vec![2, 3], vec![3, 1]])),
        MetaResponse::Ok
    );
    assert_eq!(img.topics["t"].partitions.len(), 3);
    assert_eq!(part(&img, "t", 2).leader, 3);
    let r = step(&mut img, add(vec![vec![1]]));
    assert_eq!(code(&r), ResponseError::InvalidReplicaAssignment.code());
    let r = step(&mut img, add(vec![]));
    assert_eq!(code(&r), ResponseError::InvalidPartitions.code());
    let r = step(
        &mut img,
        MetaCommand::CreatePartitions {
            name: "x".into(),
            assignments: vec![vec![1, 2]],
        },
    );
    assert_eq!(code(&r), ResponseError::UnknownTopicOrPartition.code());
    assert_eq!(img.topics["t"].partitions.len(), 3);
}

#[test]
fn broker_configs_quotas_and_unclean_setting() {
    let mut img = cluster(&[1]);
    step(&mut img, create("t", vec![vec![1]]));
    assert!(!img.unclean_election_allowed("t"));
    let mut layers = BrokerOverrides::new();
    layers.insert(
        String::new(),
        [(
            "unclean.leader.election.enable".to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    step(
        &mut img,
        MetaCommand::SetBrokerConfigs {
            configs: layers.clone(),
        },
    );
    assert_eq!(img.broker_configs, layers);
    assert!(img.unclean_election_allowed("t"));
    let off = [(
        "unclean.leader.election.enable".to_string(),
        "false".to_string(),
    )]
    .into();
    step(
        &mut img,
        MetaCommand::SetTopicConfigs {
            name: "t".into(),
            configs: off,
        },
    );
    assert!(
        !img.unclean_election_allowed("t"),
        "the topic override wins"
    );
    let quotas = vec![QuotaEntry {
        entity: vec![("client-id".into(), None)],
        values: [("producer_byte_rate".to_string(), 1024.0)].into(),
    }];
    step(
        &mut img,
        MetaCommand::SetQuotas {
            quotas: quotas.clone(),
        },
    );
    assert_eq!(img.quotas, quotas);
}

// ---- AlterPartition ----

#[test]
fn alter_partition_shrinks_and_expands() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, create("t", vec![vec![1, 2, 3]]));
    let r = alter_now(&mut img, "t", 0, vec![1, 3]);
    let p = part(&img, "t", 0);
    assert_eq!(r, MetaResponse::Partition(p.clone()));
    assert_eq!(
        (p.isr.clone(), p.leader_epoch, p.partition_epoch),
        (vec![1, 3], 0, 1)
    );
    let r = alter_now(&mut img, "t", 0, vec![1, 3, 2]);
    assert!(
        matches!(r, MetaResponse::Partition(ref s) if s.isr == vec![1, 3, 2] && s.partition_epoch == 2)
    );
    // The same ISR again is no change: no epoch bump.
    let r = alter_now(&mut img, "t", 0, vec![1, 3, 2]);
    assert!(matches!(r, MetaResponse::Partition(ref s) if s.partition_epoch == 2));
}

#[test]
fn alter_partition_refusals() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, register(4, "fenced"));
    step(&mut img, create("t", vec![vec![1, 2, 3], vec![1, 2, 4]]));
    alter_now(&mut img, "t", 0, vec![1, 2]);
    let good = alter(&img, "t", 0, vec![1]);
    let with = |f: &dyn Fn(&mut MetaCommand)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let set_isr = |isr: Vec<i32>| {
        with(&move |c| {
            if let MetaCommand::AlterPartition { isr: i, .. } = c {
                *i = isr.clone();
            }
        })
    };
    let cases = vec![
        (
            with(&|c| {
                if let MetaCommand::AlterPartition { partition, .. } = c {
                    *partition = 5
                }
            }),
            ResponseError::UnknownTopicOrPartition,
        ),
        (
            with(&|c| {
                if let MetaCommand::AlterPartition { topic, .. } = c {
                    *topic = "x".into()
                }
            }),
            ResponseError::UnknownTopicOrPartition,
        ),
        (
            with(&|c| {
                if let MetaCommand::AlterPartition { leader_epoch, .. } = c {
                    *leader_epoch -= 1
                }
            }),
            ResponseError::FencedLeaderEpoch,
        ),
        (
            with(&|c| {
                if let MetaCommand::AlterPartition { leader, .. } = c {
                    *leader = 2
                }
            }),
            ResponseError::NotLeaderOrFollower,
        ),
        (
            with(&|c| {
                if let MetaCommand::AlterPartition {
                    partition_epoch, ..
                } = c
                {
                    *partition_epoch = 0
                }
            }),
            ResponseError::InvalidUpdateVersion,
        ),
        (set_isr(vec![2, 3]), ResponseError::InvalidRequest),
        (set_isr(vec![]), ResponseError::InvalidRequest),
        (set_isr(vec![1, 5]), ResponseError::InvalidRequest),
        (set_isr(vec![1, 2, 2]), ResponseError::InvalidRequest),
    ];
    for (cmd, err) in cases {
        let before = img.topics.clone();
        let r = step(&mut img, cmd.clone());
        assert_eq!(code(&r), err.code(), "{cmd:?} → {r:?}");
        assert_eq!(img.topics, before);
    }
    // Fenced and shutting-down brokers may not join.
    let r = alter_now(&mut img, "t", 1, vec![1, 2, 4]);
    assert_eq!(code(&r), ResponseError::IneligibleReplica.code());
    let r = alter_now(&mut img, "t", 0, vec![1]);
    assert!(matches!(r, MetaResponse::Partition(_)));
    let epoch = epoch_of(&img, 3);
    step(
        &mut img,
        MetaCommand::BeginControlledShutdown { id: 3, epoch },
    );
    let r = alter_now(&mut img, "t", 0, vec![1, 3]);
    assert_eq!(code(&r), ResponseError::IneligibleReplica.code());
    // A request from before a leader change is fenced.
    let stale = alter(&img, "t", 0, vec![1, 2]);
    fence(&mut img, 1);
    assert_eq!(
        code(&step(&mut img, stale)),
        ResponseError::FencedLeaderEpoch.code()
    );
}

// ---- ElectLeader ----

#[test]
fn preferred_election() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, create("t", vec![vec![1, 2, 3]]));
    let r = step(&mut img, elect("t", 0, true, false));
    assert_eq!(code(&r), ResponseError::ElectionNotNeeded.code());
    fence(&mut img, 1);
    assert_eq!(part(&img, "t", 0).leader, 2);
    let r = step(&mut img, elect("t", 0, true, false));
    assert_eq!(code(&r), ResponseError::PreferredLeaderNotAvailable.code());
    unfence(&mut img, 1);
    // Unfenced but not back in the ISR yet: still not available.
    let r = step(&mut img, elect("t", 0, true, false));
    assert_eq!(code(&r), ResponseError::PreferredLeaderNotAvailable.code());
    alter_now(&mut img, "t", 0, vec![2, 3, 1]);
    let r = step(&mut img, elect("t", 0, true, false));
    let p = part(&img, "t", 0);
    assert_eq!(r, MetaResponse::Partition(p.clone()));
    assert_eq!((p.leader, p.leader_epoch), (1, 2));
    let r = step(&mut img, elect("t", 9, true, false));
    assert_eq!(code(&r), ResponseError::UnknownTopicOrPartition.code());
}

#[test]
fn clean_and_unclean_election_of_leaderless_partitions() {
    let mut img = cluster(&[1, 2, 3]);
    step(&mut img, create("t", vec![vec![1, 2, 3]]));
    let r = step(&mut img, elect("t", 0, false, false));
    assert_eq!(code(&r), ResponseError::ElectionNotNeeded.code());
    fence(&mut img, 2);
    fence(&mut img, 3);
    fence(&mut img, 1);
    unfence(&mut img, 3);
    let r = step(&mut img, elect("t", 0, false, false));
    assert_eq!(code(&r), ResponseError::EligibleLeadersNotAvailable.code());
    let r = step(&mut img, elect("t", 0, false, true));
    let p = part(&img, "t", 0);
    assert_eq!(r, MetaResponse::Partition(p.clone()));
    assert_eq!((p.leader, p.isr.clone()), (3, vec![3]));
    fence(&mut img, 3);
    let r = step(&mut img, elect("t", 0, false, true));
    assert_eq!(code(&r), ResponseError::EligibleLeadersNotAvailable.code());
}

// ---- producer ids ----

#[test]
fn allocate_producer_ids_hands_out_consecutive_blocks() {
    let mut img = cluster(&[1]);
    let alloc = |broker, count| MetaCommand::AllocateProducerIds { broker, count };
    assert_eq!(
        step(&mut img, alloc(1, 1000)),
        MetaResponse::ProducerIds { first: 0 }
    );
    assert_eq!(
        step(&mut img, alloc(1, 1000)),
        MetaResponse::ProducerIds { first: 1000 }
    );
    assert_eq!(img.next_producer_id, 2000);
    assert_eq!(
        code(&step(&mut img, alloc(7, 10))),
        ResponseError::BrokerIdNotRegistered.code()
    );
    assert_eq!(
        code(&step(&mut img, alloc(1, 0))),
        ResponseError::InvalidRequest.code()
    );
    img.next_producer_id = i64::MAX - 5;
    assert_eq!(
        code(&step(&mut img, alloc(1, 10))),
        ResponseError::UnknownServerError.code()
    );
    assert_eq!(img.next_producer_id, i64::MAX - 5);
}

#[test]
fn partition_count_is_capped() {
    let mut img = cluster(&[1]);
    let many = vec![vec![1]; MAX_PARTITIONS as usize + 1];
    let r = step(&mut img, create("big", many));
    assert_eq!(code(&r), ResponseError::InvalidPartitions.code());
    step(
        &mut img,
        create("t", vec![vec![1]; MAX_PARTITIONS as usize]),
    );
    let r = step(
        &mut img,
        MetaCommand::CreatePartitions {
            name: "t".into(),
            assignments: vec![vec![1]],
        },
    );
    assert_eq!(code(&r), ResponseError::InvalidPartitions.code());
}

#[test]
fn lookups_by_id_and_leader() {
    let mut img = cluster(&[1, 2]);
    step(&mut img, create("t", vec![vec![2, 1]]));
    let id = img.topics["t"].id;
    assert_eq!(img.topic_by_id(id).map(|t| t.name.as_str()), Some("t"));
    assert!(img.topic_by_id(uuid::Uuid::from_u128(5)).is_none());
    assert_eq!(
        img.leader_of("t", 0).map(|b| (b.id, b.port)),
        Some((2, 9094))
    );
    fence(&mut img, 2);
    fence(&mut img, 1);
    assert!(img.leader_of("t", 0).is_none(), "leaderless");
    assert!(img.leader_of("t", 1).is_none());
}

#[test]
fn live_broker_ids_are_sorted() {
    let mut img = cluster(&[3, 1, 2]);
    fence(&mut img, 2);
    assert_eq!(img.live_broker_ids(), vec![1, 3]);
    assert!(img.is_live(1) && !img.is_live(2) && !img.is_live(9));
}

// ---- invariants over random sequences ----

fn arb_cmd() -> impl Strategy<Value = MetaCommand> {
    let id = 1..=4i32;
    let topic = prop::sample::select(vec!["a", "b"]).prop_map(String::from);
    let replicas = prop::sample::subsequence(vec![1, 2, 3, 4], 1..=3).prop_shuffle();
    prop_oneof![
        (id.clone(), 0..3u8).prop_map(|(id, inc)| register(id, &format!("i{inc}"))),
        (id.clone(), 0..40u64).prop_map(|(id, epoch)| MetaCommand::FenceBroker { id, epoch }),
        (id.clone(), 0..40u64).prop_map(|(id, epoch)| MetaCommand::UnfenceBroker { id, epoch }),
        (id.clone(), 0..40u64)
            .prop_map(|(id, epoch)| MetaCommand::BeginControlledShutdown { id, epoch }),
        (topic.clone(), prop::collection::vec(replicas.clone(), 1..3))
            .prop_map(|(t, a)| create(&t, a)),
        topic
            .clone()
            .prop_map(|name| MetaCommand::DeleteTopic { name }),
        (topic.clone(), prop::collection::vec(replicas.clone(), 1..2))
            .prop_map(|(name, assignments)| MetaCommand::CreatePartitions { name, assignments }),
        (
            topic.clone(),
            0..3i32,
            id.clone(),
            0..4i32,
            0..6i32,
            replicas.clone()
        )
            .prop_map(
                |(topic, partition, leader, leader_epoch, partition_epoch, isr)| {
                    MetaCommand::AlterPartition {
                        topic,
                        partition,
                        leader,
                        leader_epoch,
                        partition_epoch,
                        isr,
                    }
                }
            ),
        (topic, 0..3i32, any::<bool>(), any::<bool>())
            .prop_map(|(t, p, preferred, unclean)| elect(&t, p, preferred, unclean)),
        (id, 1..100i64)
            .prop_map(|(broker, count)| MetaCommand::AllocateProducerIds { broker, count }),
    ]
}

/// Commands whose epochs are taken from the image at the time (so that most are accepted).
fn fix_epochs(img: &ClusterImage, cmd: MetaCommand, use_current: bool) -> MetaCommand {
    if !use_current {
        return cmd;
    }
    let current = |id: i32| img.brokers.get(&id).map(|b| b.epoch).unwrap_or(0);
    match cmd {
        MetaCommand::FenceBroker { id, .. } => MetaCommand::FenceBroker {
            id,
            epoch: current(id),
        },
        MetaCommand::UnfenceBroker { id, .. } => MetaCommand::UnfenceBroker {
            id,
            epoch: current(id),
        },
        MetaCommand::BeginControlledShutdown { id, .. } => MetaCommand::BeginControlledShutdown {
            id,
            epoch: current(id),
        },
        MetaCommand::AlterPartition {
            topic,
            partition,
            isr,
            ..
        } => match img.partition(&topic, partition) {
            Some(p) => {
                let mut isr = isr;
                if !isr.contains(&p.leader) {
                    isr.insert(0, p.leader);
                }
                MetaCommand::AlterPartition {
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    topic,
                    partition,
                    isr,
                }
            }
            None => MetaCommand::AlterPartition {
                topic,
                partition,
                isr,
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        },
        other => other,
    }
}

fn check_invariants(img: &ClusterImage) -> Result<(), TestCaseError> {
    for (t, i, p) in img.iter_partitions() {
        prop_assert!(!p.replicas.is_empty(), "{t}-{i} has no replicas");
        prop_assert!(!p.isr.is_empty(), "{t}-{i} has an empty ISR");
        for r in &p.isr {
            prop_assert!(
                p.replicas.contains(r),
                "{t}-{i}: ISR {:?} ⊄ replicas {:?}",
                p.isr,
                p.replicas
            );
        }
        if p.leader != NO_LEADER {
            prop_assert!(
                p.isr.contains(&p.leader),
                "{t}-{i}: leader {} not in ISR {:?}",
                p.leader,
                p.isr
            );
            prop_assert!(
                img.is_live(p.leader),
                "{t}-{i}: leader {} is fenced",
                p.leader
            );
        }
        // Fenced brokers are in no ISR, except as the last member of a leaderless partition.
        for r in &p.isr {
            if !img.is_live(*r) {
                prop_assert!(
                    p.leader == NO_LEADER && p.isr == vec![*r],
                    "{t}-{i}: fenced {r} in ISR {:?}",
                    p.isr
                );
            }
        }
    }
    Ok(())
}

/// Accepted and refused commands over all proptest cases, so that a test can check the random
/// sequences exercise both paths.
static ACCEPTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static REFUSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn random_sequences_exercise_acceptance_and_refusal() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 50,
        ..ProptestConfig::default()
    });
    let strategy = prop::collection::vec((arb_cmd(), any::<bool>()), 40..80);
    runner
        .run(&strategy, run_sequence)
        .expect("invariants hold");
    let (ok, refused) = (ACCEPTED.load(Relaxed), REFUSED.load(Relaxed));
    assert!(
        ok > 500 && refused > 500,
        "accepted {ok}, refused {refused}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_random_sequences(
        cmds in prop::collection::vec((arb_cmd(), any::<bool>()), 1..80)
    ) {
        run_sequence(cmds)?;
    }
}

/// Applies a random sequence, checking the invariants after every entry, then determinism and
/// serde round trips.
fn run_sequence(cmds: Vec<(MetaCommand, bool)>) -> Result<(), TestCaseError> {
    let mut img = ClusterImage::default();
    let mut log = Vec::new();
    for (i, (cmd, current)) in cmds.into_iter().enumerate() {
        let cmd = fix_epochs(&img, cmd, current);
        let before = img.clone();
        let r = img.apply(i as u64 + 1, &cmd);
        prop_assert_eq!(img.applied_index, i as u64 + 1);
        if let MetaResponse::Error { .. } = r {
            REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut expected = before.clone();
            expected.applied_index = img.applied_index;
            prop_assert_eq!(&img, &expected, "an error changed the image: {:?}", cmd);
        }
        if !matches!(r, MetaResponse::Error { .. }) {
            ACCEPTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        check_invariants(&img)?;
        for (t, i, p) in img.iter_partitions() {
            if let Some(old) = before.partition(t, i)
                && before.topics[t].id == img.topics[t].id
            {
                prop_assert!(p.leader_epoch >= old.leader_epoch);
                prop_assert!(p.partition_epoch >= old.partition_epoch);
                if p.leader != old.leader {
                    prop_assert!(p.leader_epoch > old.leader_epoch);
                }
                if p != old {
                    prop_assert!(p.partition_epoch > old.partition_epoch);
                }
            }
        }
        prop_assert!(img.next_producer_id >= before.next_producer_id);
        log.push(cmd);
    }
    // Determinism: the same log gives the same image.
    let mut again = ClusterImage::default();
    for (i, cmd) in log.iter().enumerate() {
        again.apply(i as u64 + 1, cmd);
    }
    prop_assert_eq!(&again, &img);
    // Serde round trips (the Raft log and snapshots store these).
    let json = serde_json::to_string(&img).unwrap();
    let back: ClusterImage = serde_json::from_str(&json).unwrap();
    prop_assert_eq!(&back, &img);
    for cmd in &log {
        let json = serde_json::to_string(cmd).unwrap();
        let back: MetaCommand = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, cmd);
    }
    Ok(())
}
