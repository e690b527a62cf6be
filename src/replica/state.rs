//! The per-shard table of replicated partitions, and [`apply`]: the diff of a new cluster image
//! against it.
//!
//! One [`Replicas`] per shard, in the shard's type map ([`ShardCtx::local_state`]), holding the
//! partitions this shard owns that have a replica on this broker. It is only ever touched on its
//! shard, from synchronous code (no borrow is held across an await), so `RefCell`s suffice.
//!
//! The image is the truth for roles, epochs and the ISR; what the table adds is what only the
//! leader knows: each follower's fetch progress ([`FollowerState`]) and an AlterPartition in
//! flight. Applying an image only resets that leader state when the leader epoch changes (a new
//! term of leadership, as Kafka's `makeLeader`); an ISR change at the same epoch keeps it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use crate::cluster::ClusterImage;
use crate::cluster::image::NO_LEADER;
use crate::shard::ShardCtx;
use crate::storage::{PartitionLog, ReplicaRole};
use crate::sync::notify::Notify;

use super::fetcher::{self, Fetcher};
use super::leader::{self, FollowerState};

/// (topic, partition)
pub type Tp = (String, i32);

/// This broker's part in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Following `leader` ([`NO_LEADER`]: none elected; nothing to fetch from).
    Follower {
        leader: i32,
    },
}

/// The leader's view of its followers for one term of leadership.
#[derive(Debug)]
pub struct LeaderState {
    /// Per assigned follower.
    pub followers: BTreeMap<i32, FollowerState>,
    /// The ISR of an AlterPartition sent and not yet seen in an image (KIP-497's pending ISR):
    /// while set, the high watermark waits for the union of both ISRs and no other change is
    /// proposed.
    pub pending_isr: Option<Vec<i32>>,
    /// The log end when this term began: a follower joins the ISR only once it has fetched past
    /// it (it then has every batch of the current epoch's predecessors that the leader kept).
    pub epoch_start_offset: i64,
}

/// One replicated partition on this shard.
pub struct PartState {
    pub role: Role,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Set while leading.
    pub leading: Option<LeaderState>,
    /// Wakes the partition's high-watermark task (ISR or follower progress changed).
    pub changed: Rc<Notify>,
}

/// The shard's replicated partitions and follower fetchers.
#[derive(Default)]
pub struct Replicas {
    pub parts: RefCell<BTreeMap<Tp, PartState>>,
    /// Per leader broker: the fetcher of the partitions this shard follows from it.
    pub fetchers: RefCell<BTreeMap<i32, Rc<Fetcher>>>,
    /// The ISR-shrink task runs (started with the first cluster image).
    shrink_started: Cell<bool>,
}

/// This shard's table.
pub fn replicas(ctx: &ShardCtx) -> Rc<Replicas> {
    ctx.local_state(Replicas::default)
}

/// What a partition of the image means for this broker, before comparing with the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub role: Role,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// The partitions of `image` with a replica on `node` that `owns` says belong to this shard.
pub fn wanted(
    image: &ClusterImage,
    node: i32,
    owns: impl Fn(&str, i32) -> bool,
) -> Vec<(Tp, Wanted)> {
    let mut out = Vec::new();
    for (name, t) in &image.topics {
        for (i, p) in t.partitions.iter().enumerate() {
            let i = i as i32;
            if !p.replicas.contains(&node) || !owns(name, i) {
                continue;
            }
            let role = if p.leader == node {
                Role::Leader
            } else {
                Role::Follower { leader: p.leader }
            };
            out.push((
                (name.clone(), i),
                Wanted {
                    role,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                },
            ));
        }
    }
    out
}

/// What to do with one partition when an image arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing about the role changed (ISR, replicas or partition epoch may have).
    Same,
    /// Lead at a new epoch.
    BecomeLeader,
    /// Follow (a new leader, or the same leader at a new epoch): truncate, then fetch.
    BecomeFollower,
}

/// Kafka's `makeLeader` / `makeFollower` decision: a role or epoch change, or nothing.
pub fn change(prev: Option<(Role, i32)>, want: &Wanted) -> Change {
    match (prev, want.role) {
        (Some((r, e)), w) if r == w && e == want.leader_epoch => Change::Same,
        (_, Role::Leader) => Change::BecomeLeader,
        (_, Role::Follower { .. }) => Change::BecomeFollower,
    }
}

/// Brings the shard's table, its logs' roles and its fetchers in line with `image`.
pub fn apply(ctx: &Rc<ShardCtx>, image: &ClusterImage) {
    let reps = replicas(ctx);
    if !reps.shrink_started.replace(true) {
        glommio::spawn_local(leader::shrink_loop(ctx.clone())).detach();
    }
    let me = ctx.info.node_id;
    let want = wanted(image, me, |t, p| ctx.owner_of(t, p) == ctx.id);
    let mut keep = std::collections::BTreeSet::new();
    for (tp, w) in want {
        keep.insert(tp.clone());
        let Some(log) = ctx.log(&tp.0, tp.1) else {
            // apply_snapshot could not open it (logged there); nothing to replicate into.
            continue;
        };
        let prev = reps
            .parts
            .borrow()
            .get(&tp)
            .map(|s| (s.role, s.leader_epoch));
        match change(prev, &w) {
            Change::Same => {
                let mut parts = reps.parts.borrow_mut();
                let Some(s) = parts.get_mut(&tp) else {
                    continue;
                };
                if s.partition_epoch != w.partition_epoch {
                    // Our AlterPartition (or the controller's change) landed: the image is the
                    // ISR now.
                    if let Some(l) = s.leading.as_mut() {
                        l.pending_isr = None;
                        let now = Instant::now();
                        for id in &w.isr {
                            if let Some(f) = l.followers.get_mut(id) {
                                f.joined_isr(now);
                            }
                        }
                    }
                }
                if let Some(l) = s.leading.as_mut() {
                    // Reassignment: replicas added at the same leader epoch start untracked.
                    let now = Instant::now();
                    let me = ctx.info.node_id;
                    for id in w.replicas.iter().filter(|id| **id != me) {
                        l.followers
                            .entry(*id)
                            .or_insert_with(|| FollowerState::new(now, w.isr.contains(id)));
                    }
                    l.followers.retain(|id, _| w.replicas.contains(id));
                }
                s.partition_epoch = w.partition_epoch;
                s.replicas = w.replicas;
                s.isr = w.isr;
                s.changed.notify();
            }
            Change::BecomeLeader => {
                become_leader(ctx, &reps, &tp, &log, w);
            }
            Change::BecomeFollower => {
                become_follower(ctx, &reps, &tp, &log, w);
            }
        }
    }
    // Partitions with no replica here any more (deleted, reassigned, moved to another shard).
    let gone: Vec<Tp> = reps
        .parts
        .borrow()
        .keys()
        .filter(|tp| !keep.contains(*tp))
        .cloned()
        .collect();
    for tp in gone {
        if let Some(s) = reps.parts.borrow_mut().remove(&tp) {
            s.changed.notify();
        }
        fetcher::remove_partition(&reps, &tp);
    }
}

fn become_leader(
    ctx: &Rc<ShardCtx>,
    reps: &Rc<Replicas>,
    tp: &Tp,
    log: &Rc<PartitionLog>,
    w: Wanted,
) {
    fetcher::remove_partition(reps, tp);
    log.set_role(ReplicaRole::Leader {
        epoch: w.leader_epoch,
    });
    let now = Instant::now();
    let me = ctx.info.node_id;
    let followers = w
        .replicas
        .iter()
        .filter(|id| **id != me)
        .map(|id| (*id, FollowerState::new(now, w.isr.contains(id))))
        .collect();
    let changed = Notify::new();
    let epoch = w.leader_epoch;
    tracing::info!(topic = %tp.0, partition = tp.1, epoch, isr = ?w.isr, "leading");
    let old = reps.parts.borrow_mut().insert(
        tp.clone(),
        PartState {
            role: Role::Leader,
            leader_epoch: w.leader_epoch,
            partition_epoch: w.partition_epoch,
            replicas: w.replicas,
            isr: w.isr,
            leading: Some(LeaderState {
                followers,
                pending_isr: None,
                epoch_start_offset: log.log_end_offset(),
            }),
            changed,
        },
    );
    if let Some(old) = old {
        old.changed.notify();
    }
    glommio::spawn_local(leader::hw_task(ctx.clone(), tp.clone(), epoch, log.clone())).detach();
}

fn become_follower(
    ctx: &Rc<ShardCtx>,
    reps: &Rc<Replicas>,
    tp: &Tp,
    log: &Rc<PartitionLog>,
    w: Wanted,
) {
    fetcher::remove_partition(reps, tp);
    log.set_role(ReplicaRole::Follower {
        epoch: w.leader_epoch,
    });
    let Role::Follower { leader } = w.role else {
        unreachable!("become_follower with a leader role");
    };
    tracing::info!(topic = %tp.0, partition = tp.1, epoch = w.leader_epoch, leader, "following");
    let epoch = w.leader_epoch;
    let old = reps.parts.borrow_mut().insert(
        tp.clone(),
        PartState {
            role: w.role,
            leader_epoch: w.leader_epoch,
            partition_epoch: w.partition_epoch,
            replicas: w.replicas,
            isr: w.isr,
            leading: None,
            changed: Notify::new(),
        },
    );
    if let Some(old) = old {
        old.changed.notify();
    }
    if leader != NO_LEADER && leader != ctx.info.node_id {
        fetcher::add_partition(ctx, reps, leader, tp.clone(), epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PartitionState, TopicImage};

    fn image() -> ClusterImage {
        let mut img = ClusterImage::default();
        let p = |replicas: Vec<i32>, leader, epoch| PartitionState {
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: epoch,
            partition_epoch: epoch,
        };
        img.topics.insert(
            "t".into(),
            TopicImage {
                name: "t".into(),
                id: uuid::Uuid::nil(),
                configs: Default::default(),
                partitions: vec![
                    p(vec![1, 2, 3], 1, 0),
                    p(vec![2, 3, 1], 2, 4),
                    p(vec![2, 3], 3, 1),
                    p(vec![3, 1], NO_LEADER, 7),
                ],
            },
        );
        img
    }

    #[test]
    fn wanted_lists_this_brokers_replicas_on_this_shard() {
        let img = image();
        let w = wanted(&img, 1, |_, _| true);
        let got: Vec<(i32, Role, i32)> = w
            .iter()
            .map(|((_, p), w)| (*p, w.role, w.leader_epoch))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, Role::Leader, 0),
                (1, Role::Follower { leader: 2 }, 4),
                (3, Role::Follower { leader: NO_LEADER }, 7),
            ]
        );
        let w = wanted(&img, 1, |_, p| p != 1);
        assert_eq!(w.len(), 2);
        assert!(wanted(&img, 9, |_, _| true).is_empty());
    }

    #[test]
    fn role_changes_follow_epochs() {
        let w = |role, epoch| Wanted {
            role,
            leader_epoch: epoch,
            partition_epoch: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
        };
        let f2 = Role::Follower { leader: 2 };
        assert_eq!(change(None, &w(Role::Leader, 0)), Change::BecomeLeader);
        assert_eq!(change(None, &w(f2, 0)), Change::BecomeFollower);
        assert_eq!(
            change(Some((Role::Leader, 3)), &w(Role::Leader, 3)),
            Change::Same
        );
        // Re-elected at a new epoch: a new term, follower state reset.
        assert_eq!(
            change(Some((Role::Leader, 3)), &w(Role::Leader, 4)),
            Change::BecomeLeader
        );
        assert_eq!(
            change(Some((Role::Leader, 3)), &w(f2, 4)),
            Change::BecomeFollower
        );
        assert_eq!(change(Some((f2, 4)), &w(f2, 4)), Change::Same);
        // Same leader, new epoch: truncate again (the leader may have lost its own tail).
        assert_eq!(change(Some((f2, 4)), &w(f2, 5)), Change::BecomeFollower);
        assert_eq!(
            change(Some((f2, 4)), &w(Role::Leader, 5)),
            Change::BecomeLeader
        );
    }
}
