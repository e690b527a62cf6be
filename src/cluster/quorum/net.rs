//! The client side of the controller transport: one persistent connection per peer, shared by
//! openraft's replication and election RPCs and by forwarded proposals and heartbeats.
//!
//! Each peer has a task that owns its connection. It connects lazily on the first request (1 s
//! connect timeout), writes requests as they come, and a reader task hands responses back by
//! request id. When the connection breaks, every request waiting on it fails at once (openraft
//! then retries or backs off); the next request reconnects, no sooner than a backoff that grows
//! from 50 ms to 1 s while connects keep failing. Callers bound each call with their own timeout.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::types::{NodeId, Snapshot, TypeConfig, Vote};
use super::wire::{self, Request, Response};

/// Why an RPC to a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// Could not connect (the peer is down): nothing was sent.
    #[error("peer {0} unreachable: {1}")]
    Unreachable(NodeId, String),
    /// The connection broke or the call timed out after the request may have been sent.
    #[error("peer {0}: {1}")]
    Failed(NodeId, String),
    #[error("peer {0}: unexpected response")]
    Unexpected(NodeId),
}

type Reply = oneshot::Sender<Result<Response, CallError>>;
/// The inbox of one peer's connection task.
type PeerInbox = mpsc::UnboundedSender<(Request, Reply)>;

/// Connections to the other nodes, by node id.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    conns: Mutex<HashMap<NodeId, (String, PeerInbox)>>,
}

impl Peers {
    /// Remembers (or updates) the address of `id`.
    pub(crate) fn set_addr(&self, id: NodeId, addr: &str) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns
            .get(&id)
            .is_some_and(|(a, tx)| a == addr && !tx.is_closed())
        {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(peer_task(id, addr.to_string(), rx));
        conns.insert(id, (addr.to_string(), tx));
    }

    /// Sends `req` to `id` and waits up to `timeout` for the answer.
    pub(crate) async fn call(
        &self,
        id: NodeId,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let tx = {
            let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.get(&id).map(|(_, tx)| tx.clone())
        };
        let Some(tx) = tx else {
            return Err(CallError::Unreachable(id, "address unknown".into()));
        };
        let (reply, rx) = oneshot::channel();
        if tx.send((req, reply)).is_err() {
            return Err(CallError::Unreachable(id, "connection task ended".into()));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err(CallError::Failed(id, "connection closed".into())),
            Err(_) => Err(CallError::Failed(
                id,
                format!("timed out after {timeout:?}"),
            )),
        }
    }
}

/// Owns the connection to one peer for as long as the runtime runs.
async fn peer_task(id: NodeId, addr: String, mut rx: mpsc::UnboundedReceiver<(Request, Reply)>) {
    let mut backoff = Duration::from_millis(50);
    let mut last_fail: Option<tokio::time::Instant> = None;
    while let Some((req, reply)) = rx.recv().await {
        if let Some(at) = last_fail
            && at.elapsed() < backoff
        {
            let _ = reply.send(Err(CallError::Unreachable(id, "backing off".into())));
            continue;
        }
        let conn = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&addr)).await;
        let stream = match conn {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(peer = id, %addr, error = %e, "metadata quorum: connect failed");
                let _ = reply.send(Err(CallError::Unreachable(id, e.to_string())));
                backoff = if last_fail.is_some() {
                    (backoff * 2).min(Duration::from_secs(1))
                } else {
                    Duration::from_millis(50)
                };
                last_fail = Some(tokio::time::Instant::now());
                continue;
            }
            Err(_) => {
                let _ = reply.send(Err(CallError::Unreachable(id, "connect timed out".into())));
                last_fail = Some(tokio::time::Instant::now());
                continue;
            }
        };
        last_fail = None;
        let _ = stream.set_nodelay(true);
        serve_connection(id, stream, (req, reply), &mut rx).await;
    }
}

/// Runs one connection until it breaks or the peer table is dropped.
async fn serve_connection(
    id: NodeId,
    stream: TcpStream,
    first: (Request, Reply),
    rx: &mut mpsc::UnboundedReceiver<(Request, Reply)>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let pending: Arc<Mutex<HashMap<u64, Reply>>> = Arc::default();
    let (dead_tx, mut dead_rx) = oneshot::channel::<String>();
    let reader = {
        let pending = pending.clone();
        tokio::spawn(async move {
            let why = loop {
                match wire::read_frame::<Response, _>(&mut rd).await {
                    Ok(Some((rid, resp))) => {
                        let waiter = pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&rid);
                        if let Some(w) = waiter {
                            let _ = w.send(Ok(resp));
                        }
                    }
                    Ok(None) => break "closed by peer".to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            let _ = dead_tx.send(why);
        })
    };
    let mut next_id = 0u64;
    let mut item = Some(first);
    let why = loop {
        let (req, reply) = match item.take() {
            Some(x) => x,
            None => tokio::select! {
                got = rx.recv() => match got {
                    Some(x) => x,
                    None => break "shutting down".to_string(),
                },
                why = &mut dead_rx => break why.unwrap_or_default(),
            },
        };
        next_id += 1;
        let frame = match wire::encode(next_id, &req) {
            Ok(f) => f,
            Err(e) => {
                let _ = reply.send(Err(CallError::Failed(id, e.to_string())));
                continue;
            }
        };
        {
            let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.len() > 1024 {
                p.retain(|_, w| !w.is_closed());
            }
            p.insert(next_id, reply);
        }
        if let Err(e) = wire::write_frame(&mut wr, &frame).await {
            break e.to_string();
        }
    };
    reader.abort();
    tracing::debug!(peer = id, reason = %why, "metadata quorum: connection closed");
    for (_, w) in pending.lock().unwrap_or_else(|e| e.into_inner()).drain() {
        let _ = w.send(Err(CallError::Failed(id, why.clone())));
    }
}

/// openraft's factory of per-target clients; all of them share [`Peers`].
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) peers: Arc<Peers>,
}

/// openraft's client for one target.
#[derive(Debug)]
pub(crate) struct PeerNetwork {
    target: NodeId,
    peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerNetwork {
        self.peers.set_addr(target, &node.addr);
        PeerNetwork {
            target,
            peers: self.peers.clone(),
        }
    }
}

fn rpc_err<E: std::error::Error>(e: CallError) -> RPCError<NodeId, BasicNode, E> {
    match e {
        CallError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let resp = self
            .peers
            .call(self.target, Request::AppendEntries(rpc), option.hard_ttl())
            .await
            .map_err(rpc_err)?;
        match resp {
            Response::AppendEntries(Ok(r)) => Ok(r),
            Response::AppendEntries(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(rpc_err(CallError::Unexpected(self.target))),
        }
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        // Snapshots go whole through `full_snapshot`; openraft 0.9 only calls this from the
        // default `full_snapshot`, which is overridden below.
        Err(rpc_err(CallError::Unexpected(self.target)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let resp = self
            .peers
            .call(self.target, Request::Vote(rpc), option.hard_ttl())
            .await
            .map_err(rpc_err)?;
        match resp {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(rpc_err(CallError::Unexpected(self.target))),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let data = String::from_utf8(snapshot.snapshot.into_inner())
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let req = Request::FullSnapshot {
            vote,
            meta: snapshot.meta,
            data,
        };
        let timeout = option.hard_ttl().max(Duration::from_secs(5));
        let call = self.peers.call(self.target, req, timeout);
        let resp = tokio::select! {
            r = call => r,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        let resp = resp.map_err(|e| match e {
            CallError::Unreachable(..) => StreamingError::Unreachable(Unreachable::new(&e)),
            _ => StreamingError::Network(NetworkError::new(&e)),
        })?;
        match resp {
            Response::FullSnapshot(Ok(r)) => Ok(r),
            Response::FullSnapshot(Err(e)) => Err(StreamingError::RemoteError(RemoteError::new(
                self.target,
                e,
            ))),
            _ => Err(StreamingError::Network(NetworkError::new(
                &CallError::Unexpected(self.target),
            ))),
        }
    }
}
