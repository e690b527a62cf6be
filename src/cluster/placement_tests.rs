//! Tests of [`assign`]: validity, even spread of leaders and replicas, follower spread, racks.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn broker(id: i32, rack: Option<&str>) -> BrokerRegistration {
    BrokerRegistration {
        id,
        incarnation: format!("inc-{id}"),
        host: "127.0.0.1".into(),
        port: 9000 + id,
        rack: rack.map(String::from),
        fenced: false,
        epoch: id as u64,
        in_controlled_shutdown: false,
    }
}

fn brokers(ids: &[i32]) -> BTreeMap<i32, BrokerRegistration> {
    ids.iter().map(|&id| (id, broker(id, None))).collect()
}

fn racked(list: &[(i32, &str)]) -> BTreeMap<i32, BrokerRegistration> {
    list.iter()
        .map(|&(id, r)| (id, broker(id, Some(r))))
        .collect()
}

fn count<'a>(ids: impl Iterator<Item = &'a i32>) -> BTreeMap<i32, usize> {
    let mut m = BTreeMap::new();
    for id in ids {
        *m.entry(*id).or_default() += 1;
    }
    m
}

#[test]
fn refusals() {
    let b = brokers(&[1, 2, 3]);
    assert!(matches!(
        assign(&b, 0, 3, 0, 0),
        Err(PlacementError::Invalid(_))
    ));
    assert!(matches!(
        assign(&b, 0, 3, -1, 0),
        Err(PlacementError::Invalid(_))
    ));
    assert_eq!(
        assign(&b, 0, 3, 4, 0),
        Err(PlacementError::TooFewBrokers {
            rf: 4,
            available: 3
        })
    );
    assert!(matches!(
        assign(&b, -1, 3, 1, 0),
        Err(PlacementError::Invalid(_))
    ));
    assert!(matches!(
        assign(&b, 0, -3, 1, 0),
        Err(PlacementError::Invalid(_))
    ));
    assert!(matches!(
        assign(&b, 0, MAX_PARTITIONS + 1, 1, 0),
        Err(PlacementError::Invalid(_))
    ));
    assert!(matches!(
        assign(&b, MAX_PARTITIONS, 1, 1, 0),
        Err(PlacementError::Invalid(_))
    ));
    assert_eq!(assign(&b, 0, 0, 1, 0), Ok(vec![]));
    assert_eq!(
        assign(&BTreeMap::new(), 0, 1, 1, 0),
        Err(PlacementError::TooFewBrokers {
            rf: 1,
            available: 0
        })
    );
}

#[test]
fn fenced_and_shutting_down_brokers_get_nothing() {
    let mut b = brokers(&[1, 2, 3, 4]);
    b.get_mut(&2).unwrap().fenced = true;
    b.get_mut(&4).unwrap().in_controlled_shutdown = true;
    let a = assign(&b, 0, 10, 2, 5).unwrap();
    for r in &a {
        let set: BTreeSet<_> = r.iter().copied().collect();
        assert_eq!(set, BTreeSet::from([1, 3]), "{a:?}");
    }
    assert_eq!(
        assign(&b, 0, 1, 3, 0),
        Err(PlacementError::TooFewBrokers {
            rf: 3,
            available: 2
        })
    );
}

#[test]
fn leaders_and_replicas_spread_evenly() {
    let b = brokers(&[1, 2, 3]);
    for seed in [0, 1, 7, 12345, u64::MAX] {
        let a = assign(&b, 0, 6, 3, seed).unwrap();
        assert_eq!(a.len(), 6);
        let leaders = count(a.iter().map(|r| &r[0]));
        assert_eq!(
            leaders.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2],
            "{a:?}"
        );
        let all = count(a.iter().flatten());
        assert_eq!(all.values().copied().collect::<Vec<_>>(), vec![6, 6, 6]);
        for r in &a {
            assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3);
        }
    }
    // Five brokers, rf 2, 20 partitions: 4 leaderships and 8 replicas each.
    let b = brokers(&[10, 20, 30, 40, 50]);
    let a = assign(&b, 0, 20, 2, 99).unwrap();
    assert!(count(a.iter().map(|r| &r[0])).values().all(|&c| c == 4));
    assert!(count(a.iter().flatten()).values().all(|&c| c == 8));
}

#[test]
fn followers_of_one_leader_differ_from_round_to_round() {
    let b = brokers(&[1, 2, 3, 4]);
    let a = assign(&b, 0, 12, 2, 0).unwrap();
    let followers_of_1: BTreeSet<i32> = a.iter().filter(|r| r[0] == 1).map(|r| r[1]).collect();
    assert_eq!(followers_of_1, BTreeSet::from([2, 3, 4]), "{a:?}");
}

#[test]
fn the_seed_picks_the_start_deterministically() {
    let b = brokers(&[1, 2, 3]);
    assert_eq!(assign(&b, 0, 4, 2, 42), assign(&b, 0, 4, 2, 42));
    let firsts: BTreeSet<i32> = (0..3)
        .map(|s| assign(&b, 0, 1, 1, s).unwrap()[0][0])
        .collect();
    assert_eq!(firsts, BTreeSet::from([1, 2, 3]));
}

#[test]
fn new_partitions_continue_the_round_robin() {
    let b = brokers(&[1, 2, 3]);
    let all = assign(&b, 0, 6, 2, 8).unwrap();
    let tail = assign(&b, 4, 2, 2, 8).unwrap();
    assert_eq!(&all[4..], &tail[..]);
}

#[test]
fn a_single_broker() {
    assert_eq!(
        assign(&brokers(&[7]), 0, 3, 1, 3),
        Ok(vec![vec![7], vec![7], vec![7]])
    );
}

#[test]
fn racks_get_one_replica_each() {
    let b = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
    let a = assign(&b, 0, 12, 3, 3).unwrap();
    for r in &a {
        let racks: BTreeSet<_> = r.iter().map(|id| b[id].rack.clone()).collect();
        assert_eq!(racks.len(), 3, "{r:?}");
    }
    assert!(
        count(a.iter().map(|r| &r[0])).values().all(|&c| c == 2),
        "{a:?}"
    );
    // rf above the rack count: every rack holds one, the rest fills up.
    let b = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
    for r in assign(&b, 0, 8, 3, 1).unwrap() {
        let racks: BTreeSet<_> = r.iter().map(|id| b[id].rack.clone()).collect();
        assert_eq!(racks.len(), 2, "{r:?}");
        assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3);
    }
    // Uneven racks: rf 2 still spans two racks.
    let b = racked(&[(1, "a"), (2, "a"), (3, "a"), (4, "b")]);
    for r in assign(&b, 0, 8, 2, 0).unwrap() {
        assert_ne!(b[&r[0]].rack, b[&r[1]].rack, "{r:?}");
    }
}

#[test]
fn racks_are_ignored_unless_every_broker_has_one() {
    let mut b = racked(&[(1, "a"), (2, "a"), (3, "b")]);
    b.get_mut(&3).unwrap().rack = None;
    let a = assign(&b, 0, 3, 2, 0).unwrap();
    assert_eq!(a, assign(&brokers(&[1, 2, 3]), 0, 3, 2, 0).unwrap());
}

proptest! {
    #[test]
    fn assignments_are_valid(
        n in 1usize..8,
        racks in prop::option::of(1usize..4),
        rf in 1i16..5,
        first in 0i32..20,
        partitions in 0i32..40,
        seed in any::<u64>(),
    ) {
        let names = ["r0", "r1", "r2", "r3"];
        let b: BTreeMap<i32, BrokerRegistration> = (0..n)
            .map(|i| {
                let id = i as i32 * 3 + 1;
                (id, broker(id, racks.map(|r| names[i % r])))
            })
            .collect();
        match assign(&b, first, partitions, rf, seed) {
            Err(PlacementError::TooFewBrokers { .. }) => prop_assert!(rf as usize > n),
            Err(e) => prop_assert!(false, "{e}"),
            Ok(a) => {
                prop_assert!(rf as usize <= n);
                prop_assert_eq!(a.len(), partitions as usize);
                let rack_count = b.values().filter_map(|x| x.rack.clone()).collect::<BTreeSet<_>>().len();
                for r in &a {
                    prop_assert_eq!(r.len(), rf as usize);
                    prop_assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), rf as usize);
                    prop_assert!(r.iter().all(|id| b.contains_key(id)));
                    if racks.is_some() {
                        let used = r.iter().map(|id| b[id].rack.clone()).collect::<BTreeSet<_>>().len();
                        prop_assert_eq!(used, (rf as usize).min(rack_count), "{:?}", r);
                    }
                }
                // Leaders: as even as round robin allows.
                let leaders = count(a.iter().map(|r| &r[0]));
                if let (Some(max), Some(min)) = (leaders.values().max(), leaders.values().min()) {
                    let min = if leaders.len() < n { &0 } else { min };
                    prop_assert!(max - min <= 1, "{:?}", leaders);
                }
            }
        }
    }
}
