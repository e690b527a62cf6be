//! The leader side: followers' progress, the high watermark, and the ISR (Kafka's
//! `Partition.updateFollowerFetchState`, `maybeIncrementLeaderHW`, `maybeExpandIsr`,
//! `maybeShrinkIsr`).
//!
//! - A follower's fetch offset is its log end offset (LEO): everything below it is in its log.
//! - The high watermark is the minimum LEO over the ISR, the leader's own included, and only
//!   moves forward. A follower whose LEO is not known yet in this term (no fetch since this broker
//!   became leader) holds it where it is: the HW a new leader inherits is at most what every
//!   ISR member had, and it only advances once all of them reported.
//! - While an AlterPartition is in flight the HW uses the union of the current and the proposed
//!   ISR ("maximal ISR", KIP-497): an expansion counts its new member before the controller
//!   confirms it, and a shrink keeps waiting for the member it drops until it is gone for sure.
//!   So an acknowledged batch is on every replica of whichever ISR the controller ends up with.
//! - A follower is caught up when it fetched at the leader's LEO (or, fetching again, at the LEO
//!   the leader had at its previous fetch): Kafka's `lastCaughtUpTime`. An ISR member not caught
//!   up within `replica.lag.time.max.ms` is dropped; a non-member that reached the HW and the
//!   start of the leader's term, and whose broker is alive, is added.
//!
//! The rules are pure functions over an [`Instant`] the caller passes, so the tests run them with
//! an injected clock; the tasks below only gather inputs and apply outputs.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use crate::cluster::{MetaCommand, MetaResponse};
use crate::shard::ShardCtx;
use crate::storage::PartitionLog;
use crate::sync::select_any;

use super::state::{Role, Tp, replicas};
use super::{ReplicaSettings, fence_epoch};

/// What the leader knows about one follower in the current term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// Its last fetch offset (= its LEO); `None` before its first fetch in this term.
    pub leo: Option<i64>,
    pub last_fetch: Option<Instant>,
    /// The leader's LEO at its last fetch.
    pub last_fetch_leader_leo: i64,
    /// When it was last known to have everything the leader had; `None`: never in this term.
    pub last_caught_up: Option<Instant>,
}

impl FollowerState {
    /// At the start of a term: an ISR member counts as caught up now (Kafka's `makeLeader`), so
    /// that it has `replica.lag.time.max.ms` to fetch before it is dropped.
    pub fn new(now: Instant, in_isr: bool) -> Self {
        FollowerState {
            leo: None,
            last_fetch: None,
            last_fetch_leader_leo: -1,
            last_caught_up: in_isr.then_some(now),
        }
    }

    /// Kafka's `Replica.updateFetchStateOrThrow`.
    pub fn on_fetch(&mut self, fetch_offset: i64, leader_leo: i64, now: Instant) {
        if fetch_offset >= leader_leo {
            self.last_caught_up = Some(later(self.last_caught_up, now));
        } else if fetch_offset >= self.last_fetch_leader_leo
            && let Some(prev) = self.last_fetch
        {
            self.last_caught_up = Some(later(self.last_caught_up, prev));
        }
        self.leo = Some(fetch_offset);
        self.last_fetch_leader_leo = leader_leo;
        self.last_fetch = Some(now);
    }

    /// It just joined the ISR: the lag clock starts now at the latest.
    pub fn joined_isr(&mut self, now: Instant) {
        if self.last_caught_up.is_none() {
            self.last_caught_up = Some(now);
        }
    }
}

fn later(a: Option<Instant>, b: Instant) -> Instant {
    a.map_or(b, |a| a.max(b))
}

/// The ISR the high watermark waits for: the current one plus the members of a pending one.
pub fn maximal_isr(isr: &[i32], pending: Option<&[i32]>) -> Vec<i32> {
    let mut out = isr.to_vec();
    for id in pending.unwrap_or_default() {
        if !out.contains(id) {
            out.push(*id);
        }
    }
    out
}

/// The minimum LEO over `isr` (`me` has `leader_leo`), or `None` while some member's LEO is not
/// known in this term.
pub fn compute_hw(
    me: i32,
    leader_leo: i64,
    isr: &[i32],
    followers: &BTreeMap<i32, FollowerState>,
) -> Option<i64> {
    let mut hw = leader_leo;
    for id in isr {
        if *id == me {
            continue;
        }
        hw = hw.min(followers.get(id)?.leo?);
    }
    Some(hw)
}

/// Whether follower `id` should join the ISR (Kafka's `isFollowerInSync` and
/// `isReplicaIsrEligible`): an assigned replica, not a member of the (maximal) ISR, whose LEO
/// reached the high watermark and the start of this term, on a live broker.
pub fn should_expand(
    id: i32,
    follower: &FollowerState,
    maximal: &[i32],
    replicas: &[i32],
    hw: i64,
    epoch_start_offset: i64,
    broker_eligible: bool,
) -> bool {
    let Some(leo) = follower.leo else {
        return false;
    };
    broker_eligible
        && replicas.contains(&id)
        && !maximal.contains(&id)
        && leo >= hw
        && leo >= epoch_start_offset
}

/// The ISR members (not `me`) that have not been caught up within `lag_max` (Kafka's
/// `getOutOfSyncReplicas`).
pub fn lagging(
    me: i32,
    isr: &[i32],
    followers: &BTreeMap<i32, FollowerState>,
    now: Instant,
    lag_max: Duration,
) -> Vec<i32> {
    isr.iter()
        .copied()
        .filter(|id| *id != me)
        .filter(
            |id| match followers.get(id).and_then(|f| f.last_caught_up) {
                Some(t) => now.saturating_duration_since(t) > lag_max,
                None => true,
            },
        )
        .collect()
}

/// Recomputes the partition's HW from the table and the log and advances the log's.
pub fn update_hw(ctx: &ShardCtx, tp: &Tp, log: &PartitionLog) {
    let reps = replicas(ctx);
    let parts = reps.parts.borrow();
    let Some(s) = parts.get(tp) else {
        return;
    };
    let Some(l) = s.leading.as_ref() else {
        return;
    };
    let isr = maximal_isr(&s.isr, l.pending_isr.as_deref());
    if let Some(hw) = compute_hw(ctx.info.node_id, log.log_end_offset(), &isr, &l.followers)
        && hw > log.high_watermark()
    {
        log.advance_high_watermark(hw);
    }
}

/// One per led partition and term: advances the HW after every local write (an ISR of the leader
/// alone has nothing else to wait for) and every change of the partition's state; ends with the
/// term.
pub async fn hw_task(ctx: Rc<ShardCtx>, tp: Tp, epoch: i32, log: Rc<PartitionLog>) {
    loop {
        let changed = {
            let reps = replicas(&ctx);
            let parts = reps.parts.borrow();
            match parts.get(&tp) {
                Some(s) if s.role == Role::Leader && s.leader_epoch == epoch => s.changed.clone(),
                _ => return,
            }
        };
        if ctx.stopping.is_set() || log.is_closed() {
            return;
        }
        // Both waits are registered before the check, so nothing between is missed. A write
        // moves the leader's own log end (its part of the ISR minimum).
        let appended = log.wait_for_write();
        let woken = changed.wait();
        update_hw(&ctx, &tp, &log);
        let c = ctx.clone();
        select_any(vec![
            Box::pin(appended) as Pin<Box<dyn Future<Output = ()>>>,
            Box::pin(woken),
            Box::pin(async move { c.stopping.wait().await }),
        ])
        .await;
    }
}

/// The leader's side of a follower's fetch on the owner shard: checks that this broker leads the
/// partition at the follower's epoch and that the follower is an assigned replica, records its
/// progress, advances the HW and, if it caught up, proposes it into the ISR.
pub fn on_follower_fetch(
    ctx: &Rc<ShardCtx>,
    log: &PartitionLog,
    tp: &Tp,
    replica_id: i32,
    current_leader_epoch: i32,
    fetch_offset: i64,
) -> Result<(), ResponseError> {
    let now = Instant::now();
    let reps = replicas(ctx);
    let expand = {
        let mut parts = reps.parts.borrow_mut();
        let Some(s) = parts.get_mut(tp) else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        if s.role != Role::Leader {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        fence_epoch(current_leader_epoch, s.leader_epoch)?;
        let Some(l) = s.leading.as_mut() else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        let leader_leo = log.log_end_offset();
        if fetch_offset > leader_leo || fetch_offset < log.log_start_offset() {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let Some(f) = l.followers.get_mut(&replica_id) else {
            tracing::warn!(topic = %tp.0, partition = tp.1, replica_id,
                "fetch from a broker that is not a replica of the partition");
            return Err(ResponseError::NotLeaderOrFollower);
        };
        f.on_fetch(fetch_offset, leader_leo, now);
        let f = *f;
        let maximal = maximal_isr(&s.isr, l.pending_isr.as_deref());
        let hw = compute_hw(ctx.info.node_id, leader_leo, &maximal, &l.followers)
            .unwrap_or(0)
            .max(log.high_watermark());
        if hw > log.high_watermark() {
            log.advance_high_watermark(hw);
        }
        let eligible = || {
            ctx.with_metadata(|m| {
                m.cluster
                    .as_ref()
                    .and_then(|i| i.brokers.get(&replica_id))
                    .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
            })
        };
        if l.pending_isr.is_none()
            && should_expand(
                replica_id,
                &f,
                &maximal,
                &s.replicas,
                log.high_watermark(),
                l.epoch_start_offset,
                true,
            )
            && eligible()
        {
            let mut isr = s.isr.clone();
            isr.push(replica_id);
            l.pending_isr = Some(isr.clone());
            tracing::info!(topic = %tp.0, partition = tp.1, replica_id, ?isr, "expanding the ISR");
            Some((s.leader_epoch, s.partition_epoch, isr))
        } else {
            None
        }
    };
    if let Some((le, pe, isr)) = expand {
        glommio::spawn_local(alter_isr(ctx.clone(), tp.clone(), le, pe, isr)).detach();
    }
    Ok(())
}

/// Sends AlterPartition for `tp` (whose pending ISR the caller set) and clears the pending ISR
/// when it fails: the next image (or the next fetch / shrink round) decides again.
async fn alter_isr(
    ctx: Rc<ShardCtx>,
    tp: Tp,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
) {
    let Some(quorum) = ctx.info.quorum.clone() else {
        return;
    };
    let cmd = MetaCommand::AlterPartition {
        topic: tp.0.clone(),
        partition: tp.1,
        leader: ctx.info.node_id,
        leader_epoch,
        partition_epoch,
        isr: isr.clone(),
    };
    let failed = match quorum.propose(cmd).await {
        Ok((_, MetaResponse::Error { code, message })) => {
            tracing::warn!(topic = %tp.0, partition = tp.1, code, %message, ?isr,
                "AlterPartition refused; waiting for the next metadata image");
            true
        }
        Ok(_) => false,
        Err(e) => {
            tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, ?isr, "AlterPartition failed");
            true
        }
    };
    if failed {
        // Not before a pause, so that a refused change is not proposed again in a hot loop.
        glommio::timer::sleep(Duration::from_millis(500)).await;
        let reps = replicas(&ctx);
        let mut parts = reps.parts.borrow_mut();
        if let Some(l) = parts
            .get_mut(&tp)
            .filter(|s| s.leader_epoch == leader_epoch && s.partition_epoch == partition_epoch)
            .and_then(|s| s.leading.as_mut())
            && l.pending_isr.as_deref() == Some(&isr[..])
        {
            l.pending_isr = None;
        }
    }
}

/// The shard's ISR-shrink task: every `replica.lag.time.max.ms / 2`, drops the lagging ISR
/// members of every partition it leads (one AlterPartition each).
pub async fn shrink_loop(ctx: Rc<ShardCtx>) {
    loop {
        let period = (ReplicaSettings::of(&ctx).lag_time_max / 2).max(Duration::from_millis(50));
        let c = ctx.clone();
        select_any(vec![
            Box::pin(glommio::timer::sleep(period)) as Pin<Box<dyn Future<Output = ()>>>,
            Box::pin(async move { c.stopping.wait().await }),
        ])
        .await;
        if ctx.stopping.is_set() {
            return;
        }
        shrink_round(&ctx, Instant::now());
    }
}

fn shrink_round(ctx: &Rc<ShardCtx>, now: Instant) {
    let lag_max = ReplicaSettings::of(ctx).lag_time_max;
    let me = ctx.info.node_id;
    let reps = replicas(ctx);
    let mut proposals = Vec::new();
    for (tp, s) in reps.parts.borrow_mut().iter_mut() {
        let Some(l) = s.leading.as_mut() else {
            continue;
        };
        if l.pending_isr.is_some() {
            continue;
        }
        let out = lagging(me, &s.isr, &l.followers, now, lag_max);
        if out.is_empty() {
            continue;
        }
        let isr: Vec<i32> = s
            .isr
            .iter()
            .copied()
            .filter(|id| !out.contains(id))
            .collect();
        tracing::info!(topic = %tp.0, partition = tp.1, lagging = ?out, ?isr, "shrinking the ISR");
        l.pending_isr = Some(isr.clone());
        proposals.push((tp.clone(), s.leader_epoch, s.partition_epoch, isr));
    }
    for (tp, le, pe, isr) in proposals {
        glommio::spawn_local(alter_isr(ctx.clone(), tp, le, pe, isr)).detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn followers(list: &[(i32, Option<i64>)]) -> BTreeMap<i32, FollowerState> {
        let now = Instant::now();
        list.iter()
            .map(|(id, leo)| {
                let mut f = FollowerState::new(now, true);
                f.leo = *leo;
                (*id, f)
            })
            .collect()
    }

    #[test]
    fn hw_is_the_isr_minimum() {
        let f = followers(&[(2, Some(7)), (3, Some(4))]);
        assert_eq!(compute_hw(1, 10, &[1, 2, 3], &f), Some(4));
        assert_eq!(compute_hw(1, 10, &[1, 2], &f), Some(7));
        // The leader alone: its own LEO.
        assert_eq!(compute_hw(1, 10, &[1], &f), Some(10));
        // Never past the leader's own end.
        let f = followers(&[(2, Some(12))]);
        assert_eq!(compute_hw(1, 10, &[1, 2], &f), Some(10));
    }

    #[test]
    fn hw_waits_for_members_without_a_fetch_this_term() {
        let f = followers(&[(2, Some(7)), (3, None)]);
        assert_eq!(compute_hw(1, 10, &[1, 2, 3], &f), None);
        assert_eq!(compute_hw(1, 10, &[1, 2], &f), Some(7));
        // A member the leader has no state for at all (not an assigned replica): no HW.
        assert_eq!(compute_hw(1, 10, &[1, 9], &f), None);
    }

    #[test]
    fn maximal_isr_counts_pending_members() {
        assert_eq!(maximal_isr(&[1, 2], None), vec![1, 2]);
        // Expansion: the new member counts at once.
        assert_eq!(maximal_isr(&[1, 2], Some(&[1, 2, 3])), vec![1, 2, 3]);
        // Shrink: the dropped member still counts until the image confirms.
        assert_eq!(maximal_isr(&[1, 2, 3], Some(&[1, 3])), vec![1, 2, 3]);
        let f = followers(&[(2, Some(3)), (3, Some(9))]);
        let shrinking = maximal_isr(&[1, 2, 3], Some(&[1, 3]));
        assert_eq!(compute_hw(1, 10, &shrinking, &f), Some(3));
        let expanding = maximal_isr(&[1, 3], Some(&[1, 3, 2]));
        assert_eq!(compute_hw(1, 10, &expanding, &f), Some(3));
        assert_eq!(compute_hw(1, 10, &[1, 3], &f), Some(9));
    }

    #[test]
    fn caught_up_time_follows_kafka() {
        let t0 = Instant::now();
        let mut f = FollowerState::new(t0, false);
        assert_eq!(f.last_caught_up, None);
        // Behind the leader's end and no earlier fetch: not caught up.
        f.on_fetch(5, 10, t0 + ms(10));
        assert_eq!(f.last_caught_up, None);
        assert_eq!(f.leo, Some(5));
        // Fetching at what the leader had at the previous fetch: caught up as of that fetch.
        f.on_fetch(10, 12, t0 + ms(20));
        assert_eq!(f.last_caught_up, Some(t0 + ms(10)));
        // At the leader's end: caught up now.
        f.on_fetch(12, 12, t0 + ms(30));
        assert_eq!(f.last_caught_up, Some(t0 + ms(30)));
        // Falling behind what the leader had at the last fetch: the time stays.
        f.on_fetch(11, 20, t0 + ms(40));
        assert_eq!(f.last_caught_up, Some(t0 + ms(30)));
    }

    #[test]
    fn shrink_drops_members_lagging_past_the_limit() {
        let t0 = Instant::now();
        let mut f: BTreeMap<i32, FollowerState> = BTreeMap::new();
        f.insert(2, FollowerState::new(t0, true));
        f.insert(3, FollowerState::new(t0, true));
        let lag = ms(1000);
        assert!(lagging(1, &[1, 2, 3], &f, t0 + ms(900), lag).is_empty());
        // 2 keeps up; 3 never fetches.
        f.get_mut(&2).unwrap().on_fetch(0, 0, t0 + ms(800));
        assert_eq!(lagging(1, &[1, 2, 3], &f, t0 + ms(1500), lag), vec![3]);
        assert_eq!(lagging(1, &[1, 2, 3], &f, t0 + ms(1900), lag), vec![2, 3]);
        // The leader is never dropped; non-members are not considered.
        assert_eq!(
            lagging(1, &[1, 2], &f, t0 + ms(1500), lag),
            Vec::<i32>::new()
        );
        // A member the leader has no state for counts as lagging.
        assert_eq!(lagging(1, &[1, 9], &f, t0, lag), vec![9]);
    }

    #[test]
    fn expand_needs_hw_epoch_start_and_a_live_broker() {
        let t0 = Instant::now();
        let mut f = FollowerState::new(t0, false);
        let replicas = [1, 2, 3];
        // No fetch yet.
        assert!(!should_expand(3, &f, &[1, 2], &replicas, 10, 0, true));
        f.on_fetch(9, 12, t0);
        assert!(!should_expand(3, &f, &[1, 2], &replicas, 10, 0, true));
        f.on_fetch(10, 12, t0);
        assert!(should_expand(3, &f, &[1, 2], &replicas, 10, 0, true));
        // Not before the start of the leader's term.
        assert!(!should_expand(3, &f, &[1, 2], &replicas, 10, 11, true));
        // Already (or pending) a member, not assigned, or its broker fenced.
        assert!(!should_expand(3, &f, &[1, 2, 3], &replicas, 10, 0, true));
        assert!(!should_expand(4, &f, &[1, 2], &replicas, 10, 0, true));
        assert!(!should_expand(3, &f, &[1, 2], &replicas, 10, 0, false));
    }
}
