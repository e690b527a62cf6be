//! The membership state machine of one consumer group (Kafka's classic protocol), pure: no I/O,
//! no clock of its own, no channels.
//!
//! Every event (`join`, `sync`, `heartbeat`, `leave`, `tick`) takes the current time in
//! milliseconds and returns the [`Reply`]s it completes. JoinGroup and SyncGroup answers are
//! usually *delayed*: the request is parked under the caller's [`ReqId`] and its answer appears
//! in the replies of a later event (another member's join, the leader's sync, a timeout found by
//! `tick`). The coordinator maps `ReqId`s to waiting connections; tests just inspect replies.
//!
//! States (as Kafka's `GroupState`):
//! ```text
//!  Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!    ▲                 ▲    │ (no member left)                     │ leader's SyncGroup
//!    └─────────────────┼────┘                                      ▼
//!                      └──── join of new/changed member, leave, expiry ── Stable
//!  Dead: deleted (DeleteGroups); the coordinator drops it.
//! ```
//! Static membership (KIP-345), as Kafka's classic coordinator does it: a member with a
//! `group.instance.id` joins without the MEMBER_ID_REQUIRED round trip; when it restarts and
//! joins again with that instance id and no member id, it takes over its old member's place under
//! a new member id (the old id is fenced with FENCED_INSTANCE_ID), and if the group is Stable and
//! the group's protocol does not change, no rebalance happens: it gets the current generation and
//! its SyncGroup returns the assignment it had. A static member that does not rejoin a rebalance
//! stays in the group (the leader assigns to it) until its session times out, like any member, or
//! a LeaveGroup (v3+, by instance id) removes it; dynamic members that do not rejoin are dropped
//! when the rebalance completes.
//!
//! The first rebalance of an Empty group (Kafka's `InitialDelayedJoin`) completes only when its
//! timer fires, `group.initial.rebalance.delay.ms` after the first join, never earlier (even with
//! a delay of 0 it completes on the timer, not inside the first JoinGroup); each firing that finds
//! new members since the previous one waits another delay, within the first member's rebalance
//! timeout.
//!
//! Every deadline (session, pending member, initial delay, rebalance timeout) is exact: a member
//! is removed when `now >= last request + session timeout`, and [`Group::next_deadline`] tells the
//! coordinator when to call [`Group::tick`].
//!
//! Deviations from Kafka, deliberately: group membership is not persisted (after a broker restart
//! members get UNKNOWN_MEMBER_ID and rejoin, as after a coordinator failover without the group
//! metadata record); there is no separate "pending sync" timeout — a member that never syncs
//! (a leader, or a static member kept while it was away) is removed by its session timeout, which
//! re-runs the rebalance; a static member that rejoins shows its new client id in DescribeGroups
//! (Kafka keeps the first incarnation's).

use crate::protocol::errors;
use bytes::Bytes;
use kafka_protocol::ResponseError;
use std::collections::HashMap;

/// Milliseconds since the Unix epoch (injected by the caller).
pub type Millis = i64;
/// Caller-chosen id of a parked JoinGroup/SyncGroup request.
pub type ReqId = u64;

/// Broker settings that govern groups (Kafka names).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms` (6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000).
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (3000): how long the first rebalance of an empty group
    /// waits for more members.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size` (unbounded).
    pub max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
            max_size: usize::MAX,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl State {
    /// The name Kafka uses in DescribeGroups / ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
            State::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub req: ReqId,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: an unknown member first gets MEMBER_ID_REQUIRED with its id.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader can be told to skip the assignment
    /// (`skip_assignment`); older leaders are answered as followers instead.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// Filled for the leader only.
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    fn error(error: ResponseError, member_id: &str) -> Self {
        JoinResult {
            error: error.code(),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub req: ReqId,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// (member id, assignment) — sent by the leader only.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: ResponseError) -> Self {
        SyncResult {
            error: error.code(),
            ..Default::default()
        }
    }
}

/// A completed (possibly delayed) JoinGroup or SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(ReqId, JoinResult),
    Sync(ReqId, SyncResult),
}

impl Reply {
    pub fn req(&self) -> ReqId {
        match self {
            Reply::Join(r, _) | Reply::Sync(r, _) => *r,
        }
    }
}

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: State,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
struct Member {
    member_id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<Protocol>,
    assignment: Bytes,
    awaiting_join: Option<ReqId>,
    awaiting_sync: Option<ReqId>,
    last_seen: Millis,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }
    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }
}

/// The timer of a group's first rebalance (Kafka's `InitialDelayedJoin`).
#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    fire_at: Millis,
    /// The delay this firing was armed with.
    delay: i64,
    /// How much of the first member's rebalance timeout is left for further extensions.
    remaining: i64,
}

/// One consumer group's membership state.
#[derive(Debug)]
pub struct Group {
    id: String,
    config: GroupConfig,
    state: State,
    state_since: Millis,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    /// In join order (the first joiner leads).
    members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined: id → expiry time.
    pending: HashMap<String, Millis>,
    /// group.instance.id → member id.
    statics: HashMap<String, String>,
    /// When a (non-initial) rebalance completes even if not every member rejoined.
    rebalance_deadline: Millis,
    /// Set while the rebalance is the first one after Empty: only this timer completes it.
    initial: Option<InitialDelay>,
    /// A member was added since the initial timer was last armed (Kafka's `newMemberAdded`).
    new_member_added: bool,
    id_seed: u64,
    id_seq: u64,
}

impl Group {
    pub fn new(id: impl Into<String>, config: GroupConfig, now: Millis) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let id_seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Group {
            id: id.into(),
            config,
            state: State::Empty,
            state_since: now,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            rebalance_deadline: 0,
            initial: None,
            new_member_added: false,
            id_seed,
            id_seq: 0,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn state(&self) -> State {
        self.state
    }
    /// When the group entered its current state.
    pub fn state_since(&self) -> Millis {
        self.state_since
    }
    pub fn generation(&self) -> i32 {
        self.generation
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
    pub fn member_ids(&self) -> Vec<String> {
        self.members.iter().map(|m| m.member_id.clone()).collect()
    }
    pub fn has_member(&self, member_id: &str) -> bool {
        self.member(member_id).is_some()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// Marks the group deleted; parked requests get COORDINATOR_NOT_AVAILABLE.
    pub fn set_dead(&mut self, now: Millis) -> Vec<Reply> {
        let mut out = Vec::new();
        for m in &mut self.members {
            if let Some(r) = m.awaiting_join.take() {
                out.push(Reply::Join(
                    r,
                    JoinResult::error(ResponseError::CoordinatorNotAvailable, &m.member_id),
                ));
            }
            if let Some(r) = m.awaiting_sync.take() {
                out.push(Reply::Sync(
                    r,
                    SyncResult::error(ResponseError::CoordinatorNotAvailable),
                ));
            }
        }
        self.members.clear();
        self.pending.clear();
        self.statics.clear();
        self.initial = None;
        self.set_state(State::Dead, now);
        out
    }

    fn set_state(&mut self, s: State, now: Millis) {
        self.state = s;
        self.state_since = now;
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == id)
    }
    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.member_id == id)
    }
    /// The member `id`, or UNKNOWN_MEMBER_ID. The JoinGroup, SyncGroup and Heartbeat paths look
    /// members up through this even after validating them, so a member missing against the
    /// state's own bookkeeping is an error answer to one request, never a panic of the shard.
    fn known_member(&mut self, id: &str) -> Result<&mut Member, ResponseError> {
        self.member_mut(id).ok_or(ResponseError::UnknownMemberId)
    }

    fn new_member_id(&mut self, client_id: &str, instance: Option<&str>) -> String {
        self.id_seq += 1;
        let prefix = instance.unwrap_or(client_id);
        format!("{prefix}-{:016x}-{}", self.id_seed, self.id_seq)
    }

    /// Kafka's `validateMember`: with an instance id, that instance must be registered
    /// (UNKNOWN_MEMBER_ID) to this member id (FENCED_INSTANCE_ID); then the member must exist.
    /// Without an instance id only the member id is checked.
    fn validate_member(
        &self,
        member_id: &str,
        instance: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(inst) = instance {
            match self.statics.get(inst) {
                None => return Err(ResponseError::UnknownMemberId),
                Some(owner) if owner != member_id => return Err(ResponseError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if self.has_member(member_id) {
            Ok(())
        } else {
            Err(ResponseError::UnknownMemberId)
        }
    }

    /// The group's rebalance timeout: the largest of its members'.
    fn rebalance_timeout(&self) -> i64 {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    /// The JoinGroup answer for `member_id` in the current generation.
    fn join_result(&self, member_id: &str) -> JoinResult {
        let is_leader = self.leader.as_deref() == Some(member_id);
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinResult {
            error: errors::NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members: if is_leader {
                self.members
                    .iter()
                    .map(|m| JoinMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Protocols every member supports, chosen by vote: each member votes for the first of its
    /// own (preference-ordered) protocols that all support; most votes wins, ties go to the
    /// protocol listed first by the longest-standing member.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for m in &self.members {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| *c == p.name))
            {
                votes[i] += 1;
            }
        }
        let mut best: Option<usize> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|b| *v > votes[b]) {
                best = Some(i);
            }
        }
        best.map(|i| candidates[i].to_string())
    }

    /// Could a member with these protocols join, given the other current members?
    fn protocols_compatible(&self, r: &JoinRequest) -> bool {
        if r.protocol_type.is_empty() || r.protocols.is_empty() {
            return false;
        }
        let others: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| m.member_id != r.member_id)
            .collect();
        if others.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(r.protocol_type.as_str()) {
            return false;
        }
        r.protocols
            .iter()
            .any(|p| others.iter().all(|m| m.supports(&p.name)))
    }

    // ---------------------------------------------------------------- JoinGroup

    pub fn join(&mut self, r: JoinRequest, now: Millis) -> Vec<Reply> {
        let mut out = Vec::new();
        let fail = |e: ResponseError, out: &mut Vec<Reply>| {
            out.push(Reply::Join(r.req, JoinResult::error(e, &r.member_id)));
        };
        if self.state == State::Dead {
            fail(ResponseError::CoordinatorNotAvailable, &mut out);
            return out;
        }
        if r.session_timeout_ms < self.config.min_session_timeout_ms
            || r.session_timeout_ms > self.config.max_session_timeout_ms
        {
            fail(ResponseError::InvalidSessionTimeout, &mut out);
            return out;
        }
        if !self.protocols_compatible(&r) {
            fail(ResponseError::InconsistentGroupProtocol, &mut out);
            return out;
        }
        if r.member_id.is_empty() {
            self.join_unknown(r, now, &mut out);
        } else {
            self.join_known(r, now, &mut out);
        }
        out
    }

    fn join_unknown(&mut self, r: JoinRequest, now: Millis, out: &mut Vec<Reply>) {
        if let Some(inst) = r.group_instance_id.clone() {
            if let Some(old_id) = self.statics.get(&inst).cloned() {
                self.replace_static(r, &inst, &old_id, now, out);
                return;
            }
            let id = self.new_member_id(&r.client_id, Some(&inst));
            self.add_and_rebalance(r, id, now, out);
            return;
        }
        let id = self.new_member_id(&r.client_id, None);
        if r.require_known_member_id {
            if self.members.len() + self.pending.len() >= self.config.max_size {
                out.push(Reply::Join(
                    r.req,
                    JoinResult::error(ResponseError::GroupMaxSizeReached, ""),
                ));
                return;
            }
            self.pending
                .insert(id.clone(), now + r.session_timeout_ms as i64);
            out.push(Reply::Join(
                r.req,
                JoinResult::error(ResponseError::MemberIdRequired, &id),
            ));
            return;
        }
        self.add_and_rebalance(r, id, now, out);
    }

    /// A static member rejoined without its member id (e.g. after a restart): it takes over the
    /// old member's place (and assignment) under a new id; the old id is fenced. In a Stable
    /// group whose protocol stays the same this is no rebalance: the member gets the current
    /// generation at once and fetches its assignment with SyncGroup. As in Kafka, a v9+ leader is
    /// told to skip the assignment, and an older one is answered with the leader id the group had
    /// before the replacement, so it does not compute an assignment the Stable group would ignore.
    fn replace_static(
        &mut self,
        r: JoinRequest,
        inst: &str,
        old_id: &str,
        now: Millis,
        out: &mut Vec<Reply>,
    ) {
        let new_id = self.new_member_id(&r.client_id, Some(inst));
        let leader_before = self.leader.clone();
        {
            let m = match self.known_member(old_id) {
                Ok(m) => m,
                Err(e) => {
                    // The instance map names a member that is gone: forget the stale entry so
                    // the client's next join registers the instance afresh.
                    tracing::warn!(
                        group = %self.id, instance = %inst, member = %old_id,
                        "static member missing; dropping its instance entry"
                    );
                    self.statics.remove(inst);
                    out.push(Reply::Join(r.req, JoinResult::error(e, &r.member_id)));
                    return;
                }
            };
            if let Some(req) = m.awaiting_join.take() {
                out.push(Reply::Join(
                    req,
                    JoinResult::error(ResponseError::FencedInstanceId, old_id),
                ));
            }
            if let Some(req) = m.awaiting_sync.take() {
                out.push(Reply::Sync(
                    req,
                    SyncResult::error(ResponseError::FencedInstanceId),
                ));
            }
            m.protocols = r.protocols.clone();
            m.member_id = new_id.clone();
            m.client_id = r.client_id.clone();
            m.client_host = r.client_host.clone();
            m.session_timeout_ms = r.session_timeout_ms;
            m.rebalance_timeout_ms = r.rebalance_timeout_ms;
            m.last_seen = now;
        }
        self.statics.insert(inst.to_string(), new_id.clone());
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            State::Stable => {
                let unchanged = self.select_protocol() == self.protocol;
                if unchanged {
                    let mut res = self.join_result(&new_id);
                    if r.supports_skip_assignment {
                        res.skip_assignment = self.leader.as_deref() == Some(new_id.as_str());
                    } else {
                        res.leader = leader_before.unwrap_or_default();
                        res.members.clear();
                    }
                    out.push(Reply::Join(r.req, res));
                } else if self.park_join(&new_id, r.req, out) {
                    self.prepare_rebalance(now, out);
                }
            }
            State::CompletingRebalance => {
                if self.park_join(&new_id, r.req, out) {
                    self.prepare_rebalance(now, out);
                }
            }
            _ => {
                if self.park_join(&new_id, r.req, out) {
                    self.maybe_complete_join(now, out);
                }
            }
        }
    }

    /// Parks JoinGroup `req` under member `id` until the join phase completes; false (and the
    /// request answered UNKNOWN_MEMBER_ID) if there is no such member.
    fn park_join(&mut self, id: &str, req: ReqId, out: &mut Vec<Reply>) -> bool {
        match self.known_member(id) {
            Ok(m) => {
                m.awaiting_join = Some(req);
                true
            }
            Err(e) => {
                out.push(Reply::Join(req, JoinResult::error(e, id)));
                false
            }
        }
    }

    fn join_known(&mut self, r: JoinRequest, now: Millis, out: &mut Vec<Reply>) {
        if self.pending.remove(&r.member_id).is_some() {
            let id = r.member_id.clone();
            self.add_and_rebalance(r, id, now, out);
            return;
        }
        if let Err(e) = self.validate_member(&r.member_id, r.group_instance_id.as_deref()) {
            out.push(Reply::Join(r.req, JoinResult::error(e, &r.member_id)));
            return;
        }
        let Some(m) = self.member(&r.member_id) else {
            let e = ResponseError::UnknownMemberId;
            out.push(Reply::Join(r.req, JoinResult::error(e, &r.member_id)));
            return;
        };
        let unchanged = m.protocols == r.protocols;
        let is_leader = self.leader.as_deref() == Some(r.member_id.as_str());
        match self.state {
            State::Empty | State::Dead => {
                out.push(Reply::Join(
                    r.req,
                    JoinResult::error(ResponseError::UnknownMemberId, &r.member_id),
                ));
            }
            State::PreparingRebalance => {
                if self.update_member(&r, now, out) {
                    self.maybe_complete_join(now, out);
                }
            }
            State::CompletingRebalance if unchanged => self.rejoin_unchanged(&r, now, out),
            State::Stable if unchanged && !is_leader => self.rejoin_unchanged(&r, now, out),
            State::CompletingRebalance | State::Stable => {
                if self.update_member(&r, now, out) {
                    self.prepare_rebalance(now, out);
                }
            }
        }
    }

    /// A known member rejoined with the same protocols where that changes nothing: its session
    /// restarts and it gets the current generation at once.
    fn rejoin_unchanged(&mut self, r: &JoinRequest, now: Millis, out: &mut Vec<Reply>) {
        let res = match self.known_member(&r.member_id) {
            Ok(m) => {
                m.last_seen = now;
                self.join_result(&r.member_id)
            }
            Err(e) => JoinResult::error(e, &r.member_id),
        };
        out.push(Reply::Join(r.req, res));
    }

    /// Refreshes a known member from its JoinGroup and parks the request; false (and the request
    /// answered UNKNOWN_MEMBER_ID) if there is no such member.
    fn update_member(&mut self, r: &JoinRequest, now: Millis, out: &mut Vec<Reply>) -> bool {
        let m = match self.known_member(&r.member_id) {
            Ok(m) => m,
            Err(e) => {
                out.push(Reply::Join(r.req, JoinResult::error(e, &r.member_id)));
                return false;
            }
        };
        if let Some(old) = m.awaiting_join.replace(r.req) {
            out.push(Reply::Join(
                old,
                JoinResult::error(ResponseError::RebalanceInProgress, &r.member_id),
            ));
        }
        m.protocols = r.protocols.clone();
        m.session_timeout_ms = r.session_timeout_ms;
        m.rebalance_timeout_ms = r.rebalance_timeout_ms;
        m.client_id = r.client_id.clone();
        m.client_host = r.client_host.clone();
        m.last_seen = now;
        true
    }

    fn add_and_rebalance(&mut self, r: JoinRequest, id: String, now: Millis, out: &mut Vec<Reply>) {
        if self.members.len() >= self.config.max_size {
            out.push(Reply::Join(
                r.req,
                JoinResult::error(ResponseError::GroupMaxSizeReached, &id),
            ));
            return;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(r.protocol_type.clone());
        }
        if let Some(inst) = &r.group_instance_id {
            self.statics.insert(inst.clone(), id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.members.push(Member {
            member_id: id,
            instance_id: r.group_instance_id,
            client_id: r.client_id,
            client_host: r.client_host,
            session_timeout_ms: r.session_timeout_ms,
            rebalance_timeout_ms: r.rebalance_timeout_ms,
            protocols: r.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(r.req),
            awaiting_sync: None,
            last_seen: now,
        });
        match self.state {
            State::PreparingRebalance => {
                if self.initial.is_some() {
                    // The initial timer will wait another delay when it fires.
                    self.new_member_added = true;
                }
                self.maybe_complete_join(now, out);
            }
            _ => self.prepare_rebalance(now, out),
        }
    }

    fn prepare_rebalance(&mut self, now: Millis, out: &mut Vec<Reply>) {
        if self.state == State::CompletingRebalance {
            for m in &mut self.members {
                if let Some(req) = m.awaiting_sync.take() {
                    out.push(Reply::Sync(
                        req,
                        SyncResult::error(ResponseError::RebalanceInProgress),
                    ));
                }
                m.assignment = Bytes::new();
            }
        }
        let initial = self.state == State::Empty;
        let timeout = self.rebalance_timeout();
        self.set_state(State::PreparingRebalance, now);
        if initial {
            // The group is new: give more members time to join. Only the timer completes it.
            let delay = self.config.initial_rebalance_delay_ms.max(0) as i64;
            self.initial = Some(InitialDelay {
                fire_at: now + delay,
                delay,
                remaining: (timeout - delay).max(0),
            });
            self.new_member_added = false;
        } else {
            self.initial = None;
            self.rebalance_deadline = now + timeout;
            self.maybe_complete_join(now, out);
        }
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.iter().all(|m| m.awaiting_join.is_some())
    }

    /// Completes the join phase once everyone rejoined — but never the initial rebalance, which
    /// only its timer completes (Kafka's `maybeCompleteJoinPhase`).
    fn maybe_complete_join(&mut self, now: Millis, out: &mut Vec<Reply>) {
        if self.state == State::PreparingRebalance && self.initial.is_none() && self.all_joined() {
            self.complete_join(now, out);
        }
    }

    /// Ends the join phase: dynamic members that did not rejoin are dropped (static ones stay,
    /// with the assignment the leader gives them), the generation advances and every joined
    /// member gets its JoinGroup answer (the leader with the member list). If only static members
    /// that did not rejoin are left, the group waits another rebalance timeout instead (their
    /// session timeouts remove them meanwhile if they are gone).
    fn complete_join(&mut self, now: Millis, out: &mut Vec<Reply>) {
        self.initial = None;
        self.new_member_added = false;
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        if !gone.is_empty() {
            tracing::info!(group = %self.id, members = ?gone, "removing dynamic members that did not rejoin");
        }
        for id in gone {
            self.remove_member(&id, ResponseError::UnknownMemberId, out);
        }
        if !self.members.is_empty() && !self.elect_joined_leader() {
            tracing::info!(group = %self.id, "no member rejoined; waiting another rebalance timeout");
            self.rebalance_deadline = now + self.rebalance_timeout();
            return;
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(State::Empty, now);
            return;
        }
        self.protocol = self.select_protocol();
        self.set_state(State::CompletingRebalance, now);
        let ids: Vec<(String, ReqId)> = self
            .members
            .iter_mut()
            .filter_map(|m| {
                // Every member's session restarts now, including static members kept without
                // rejoining (as Kafka reschedules all heartbeats here).
                m.last_seen = now;
                m.awaiting_join.take().map(|req| (m.member_id.clone(), req))
            })
            .collect();
        for (id, req) in ids {
            out.push(Reply::Join(req, self.join_result(&id)));
        }
    }

    /// Keeps the leader if it rejoined, else picks a member that did. False if none rejoined.
    fn elect_joined_leader(&mut self) -> bool {
        let joined = |m: &Member| m.awaiting_join.is_some();
        if self
            .leader
            .as_deref()
            .and_then(|l| self.member(l))
            .is_some_and(joined)
        {
            return true;
        }
        match self.members.iter().find(|m| joined(m)) {
            Some(m) => {
                self.leader = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Drops a member; its parked requests get `error`. Picks a new leader if needed.
    fn remove_member(&mut self, id: &str, error: ResponseError, out: &mut Vec<Reply>) {
        let Some(pos) = self.members.iter().position(|m| m.member_id == id) else {
            return;
        };
        let m = self.members.remove(pos);
        if let Some(req) = m.awaiting_join {
            out.push(Reply::Join(req, JoinResult::error(error, id)));
        }
        if let Some(req) = m.awaiting_sync {
            out.push(Reply::Sync(req, SyncResult::error(error)));
        }
        if let Some(inst) = &m.instance_id
            && self.statics.get(inst).is_some_and(|o| o == id)
        {
            self.statics.remove(inst);
        }
        if self.leader.as_deref() == Some(id) {
            // Prefer a member that is already rejoining, as Kafka does.
            self.leader = self
                .members
                .iter()
                .find(|m| m.awaiting_join.is_some())
                .or(self.members.first())
                .map(|m| m.member_id.clone());
        }
    }

    /// After members left or expired: start (or try to finish) a rebalance.
    fn after_removal(&mut self, now: Millis, out: &mut Vec<Reply>) {
        match self.state {
            State::Stable | State::CompletingRebalance => self.prepare_rebalance(now, out),
            State::PreparingRebalance => self.maybe_complete_join(now, out),
            State::Empty | State::Dead => {}
        }
    }

    // ---------------------------------------------------------------- SyncGroup

    pub fn sync(&mut self, r: SyncRequest, now: Millis) -> Vec<Reply> {
        let mut out = Vec::new();
        let fail = |e: ResponseError, out: &mut Vec<Reply>| {
            out.push(Reply::Sync(r.req, SyncResult::error(e)))
        };
        match self.state {
            State::Dead => {
                fail(ResponseError::CoordinatorNotAvailable, &mut out);
                return out;
            }
            State::Empty => {
                fail(ResponseError::UnknownMemberId, &mut out);
                return out;
            }
            _ => {}
        }
        if let Err(e) = self.validate_member(&r.member_id, r.group_instance_id.as_deref()) {
            fail(e, &mut out);
            return out;
        }
        if r.generation_id != self.generation {
            fail(ResponseError::IllegalGeneration, &mut out);
            return out;
        }
        // Kafka's isProtocolInconsistent: only when both sides name one and they differ.
        let differs = |req: &Option<String>, ours: &Option<String>| matches!((req, ours), (Some(a), Some(b)) if a != b);
        if differs(&r.protocol_type, &self.protocol_type)
            || differs(&r.protocol_name, &self.protocol)
        {
            fail(ResponseError::InconsistentGroupProtocol, &mut out);
            return out;
        }
        match self.state {
            State::PreparingRebalance => fail(ResponseError::RebalanceInProgress, &mut out),
            State::Stable => match self.known_member(&r.member_id) {
                Ok(m) => {
                    m.last_seen = now;
                    let assignment = m.assignment.clone();
                    out.push(Reply::Sync(r.req, self.sync_result(assignment)));
                }
                Err(e) => fail(e, &mut out),
            },
            State::CompletingRebalance => {
                let m = match self.known_member(&r.member_id) {
                    Ok(m) => m,
                    Err(e) => {
                        fail(e, &mut out);
                        return out;
                    }
                };
                m.last_seen = now;
                if let Some(old) = m.awaiting_sync.replace(r.req) {
                    out.push(Reply::Sync(
                        old,
                        SyncResult::error(ResponseError::RebalanceInProgress),
                    ));
                }
                if self.leader.as_deref() == Some(r.member_id.as_str()) {
                    let mut given: HashMap<String, Bytes> = r.assignments.into_iter().collect();
                    for m in &mut self.members {
                        m.assignment = given.remove(&m.member_id).unwrap_or_default();
                    }
                    self.set_state(State::Stable, now);
                    let done: Vec<(ReqId, Bytes)> = self
                        .members
                        .iter_mut()
                        .filter_map(|m| m.awaiting_sync.take().map(|q| (q, m.assignment.clone())))
                        .collect();
                    for (req, a) in done {
                        out.push(Reply::Sync(req, self.sync_result(a)));
                    }
                }
            }
            State::Empty | State::Dead => unreachable!("handled above"),
        }
        out
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: errors::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    // ---------------------------------------------------------------- Heartbeat / commit checks

    /// Common member/generation validation of Heartbeat and OffsetCommit.
    fn check_member(
        &self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        self.validate_member(member_id, instance)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Millis,
    ) -> i16 {
        match self.state {
            State::Dead => return ResponseError::CoordinatorNotAvailable.code(),
            State::Empty => return ResponseError::UnknownMemberId.code(),
            _ => {}
        }
        if let Err(e) = self.check_member(member_id, instance, generation) {
            return e.code();
        }
        match self.known_member(member_id) {
            Ok(m) => m.last_seen = now,
            Err(e) => return e.code(),
        }
        if self.state == State::PreparingRebalance {
            ResponseError::RebalanceInProgress.code()
        } else {
            errors::NONE
        }
    }

    /// May this OffsetCommit go ahead? Kafka's `validateOffsetCommit`, in its order: a
    /// standalone consumer (generation < 0) may commit to an Empty group; a request naming a
    /// member (id, instance id or generation >= 0) must be that member (FENCED_INSTANCE_ID for
    /// an old incarnation of a static member) of the current generation; an anonymous one is
    /// refused by a non-empty group; members get REBALANCE_IN_PROGRESS while the assignment is
    /// being distributed. A valid commit counts as a heartbeat (Stable or PreparingRebalance).
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Millis,
    ) -> i16 {
        match self.state {
            State::Dead => return ResponseError::CoordinatorNotAvailable.code(),
            State::Empty if generation < 0 => return errors::NONE,
            _ => {}
        }
        if generation >= 0 || !member_id.is_empty() || instance.is_some() {
            if let Err(e) = self.check_member(member_id, instance, generation) {
                return e.code();
            }
        } else if self.state != State::Empty {
            return ResponseError::UnknownMemberId.code();
        }
        if self.state == State::CompletingRebalance {
            return ResponseError::RebalanceInProgress.code();
        }
        if let Some(m) = self.member_mut(member_id) {
            m.last_seen = now;
        }
        errors::NONE
    }

    /// May this TxnOffsetCommit go ahead? Kafka's `validateOffsetCommit` for transactional
    /// commits (KIP-447): a standalone producer (generation < 0) may commit to an Empty group;
    /// a request naming a member (id, instance id or generation >= 0) must be that member of the
    /// current generation (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION). Unlike
    /// OffsetCommit, an anonymous request (TxnOffsetCommit v0–v2 carry no member) is accepted
    /// whatever the state, and there is no REBALANCE_IN_PROGRESS: the transaction either commits
    /// with the generation it was validated against or is aborted.
    pub fn validate_txn_commit(
        &self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        match self.state {
            State::Dead => return ResponseError::CoordinatorNotAvailable.code(),
            State::Empty if generation < 0 => return errors::NONE,
            _ => {}
        }
        if (generation >= 0 || !member_id.is_empty() || instance.is_some())
            && let Err(e) = self.check_member(member_id, instance, generation)
        {
            return e.code();
        }
        errors::NONE
    }

    // ---------------------------------------------------------------- LeaveGroup

    /// Removes members (`(member id, group.instance.id)`), as Kafka's LeaveGroup: an empty member
    /// id with an instance id means "whoever holds that instance" (the KIP-345 admin removal); a
    /// member id is checked like any request (an old incarnation of a static member gets
    /// FENCED_INSTANCE_ID). Returns one error code per member.
    pub fn leave(
        &mut self,
        members: &[(String, Option<String>)],
        now: Millis,
    ) -> (Vec<i16>, Vec<Reply>) {
        let mut out = Vec::new();
        let mut codes = Vec::with_capacity(members.len());
        let mut removed = false;
        for (member_id, instance) in members {
            if self.state == State::Dead {
                codes.push(ResponseError::CoordinatorNotAvailable.code());
                continue;
            }
            let code = if member_id.is_empty() {
                match instance.as_ref().and_then(|i| self.statics.get(i)).cloned() {
                    Some(owner) => {
                        self.remove_member(&owner, ResponseError::UnknownMemberId, &mut out);
                        removed = true;
                        errors::NONE
                    }
                    None => ResponseError::UnknownMemberId.code(),
                }
            } else if self.pending.remove(member_id).is_some() {
                removed = true;
                errors::NONE
            } else {
                match self.validate_member(member_id, instance.as_deref()) {
                    Ok(()) => {
                        self.remove_member(member_id, ResponseError::UnknownMemberId, &mut out);
                        removed = true;
                        errors::NONE
                    }
                    Err(e) => e.code(),
                }
            };
            codes.push(code);
        }
        if removed {
            self.after_removal(now, &mut out);
        }
        (codes, out)
    }

    // ---------------------------------------------------------------- timers

    /// Applies every deadline that has passed: pending-member and session expiry (static members
    /// alike: a member is gone once `now >= last request + session timeout`; members parked in
    /// JoinGroup or SyncGroup are waiting on the group, not silent), the initial delay and the
    /// rebalance timeout. The coordinator calls it at [`Group::next_deadline`].
    pub fn tick(&mut self, now: Millis) -> Vec<Reply> {
        let mut out = Vec::new();
        if self.state == State::Dead {
            return out;
        }
        let before = self.pending.len();
        self.pending.retain(|_, exp| *exp > now);
        let mut removed = before != self.pending.len();
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| {
                m.awaiting_join.is_none()
                    && m.awaiting_sync.is_none()
                    && m.last_seen + (m.session_timeout_ms as i64) <= now
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id, ResponseError::UnknownMemberId, &mut out);
            removed = true;
        }
        if removed {
            match self.state {
                State::Stable | State::CompletingRebalance => self.prepare_rebalance(now, &mut out),
                // Kafka completes the join once the rest have joined, even during the initial
                // delay, when a member times out (unlike a LeaveGroup).
                State::PreparingRebalance if self.all_joined() => self.complete_join(now, &mut out),
                _ => {}
            }
        }
        if self.state == State::PreparingRebalance {
            match self.initial {
                Some(d) if now >= d.fire_at => {
                    if self.new_member_added && d.remaining > 0 {
                        // Members kept arriving: wait another delay (Kafka's
                        // `tryCompleteInitialRebalanceElseSchedule`).
                        self.new_member_added = false;
                        let delay =
                            (self.config.initial_rebalance_delay_ms.max(0) as i64).min(d.remaining);
                        self.initial = Some(InitialDelay {
                            fire_at: now + delay,
                            delay,
                            remaining: (d.remaining - d.delay).max(0),
                        });
                    } else {
                        self.complete_join(now, &mut out);
                    }
                }
                Some(_) => {}
                None if now >= self.rebalance_deadline => self.complete_join(now, &mut out),
                None => {}
            }
        }
        out
    }

    /// The earliest time at which `tick` would change something (None: nothing scheduled).
    pub fn next_deadline(&self) -> Option<Millis> {
        let mut d: Option<Millis> = self.pending.values().copied().min();
        let mut take = |t: Millis| d = Some(d.map_or(t, |x| x.min(t)));
        for m in &self.members {
            if m.awaiting_join.is_none() && m.awaiting_sync.is_none() {
                take(m.last_seen + m.session_timeout_ms as i64);
            }
        }
        if self.state == State::PreparingRebalance {
            take(self.initial.map_or(self.rebalance_deadline, |i| i.fire_at));
        }
        d
    }

    /// Each member's subscription metadata: for the selected protocol, or all it offered.
    pub fn member_metadata(&self) -> Vec<Bytes> {
        let mut out = Vec::new();
        for m in &self.members {
            match &self.protocol {
                Some(p) => out.push(m.metadata_for(p)),
                None => out.extend(m.protocols.iter().map(|p| p.metadata.clone())),
            }
        }
        out
    }

    // ---------------------------------------------------------------- describe

    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == State::Stable;
        let protocol = if stable {
            self.protocol.clone().unwrap_or_default()
        } else {
            String::new()
        };
        GroupDescription {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            members: self
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
