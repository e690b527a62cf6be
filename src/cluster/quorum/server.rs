//! The controller listener: accepts connections from the other nodes and answers their
//! requests ([`super::wire`]) from the local Raft node and active controller.
//!
//! Each connection has a reader loop that decodes frames and runs every request as its own task
//! (a vote must not wait behind a snapshot install), and a writer task that sends the answers
//! back in completion order, tagged with their request ids. A frame that does not decode or is
//! too long closes the connection with a log line.

use std::io::Cursor;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::node::Node;
use super::types::Snapshot;
use super::wire::{self, Request, Response};

/// Accepts controller connections until the runtime stops.
pub(crate) async fn serve(listener: TcpListener, node: Arc<Node>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tracing::debug!(%peer, "metadata quorum: connection accepted");
                tokio::spawn(connection(stream, node.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "metadata quorum: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, node: Arc<Node>) {
    let peer = stream.peer_addr().ok();
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wire::write_frame(&mut wr, &frame).await.is_err() {
                break;
            }
        }
    });
    loop {
        match wire::read_frame::<Request, _>(&mut rd).await {
            Ok(Some((id, req))) => {
                let node = node.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let resp = handle(&node, req).await;
                    match wire::encode(id, &resp) {
                        Ok(frame) => {
                            let _ = tx.send(frame);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "metadata quorum: cannot encode a response")
                        }
                    }
                });
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(?peer, error = %e, "metadata quorum: closing a connection on a bad frame");
                break;
            }
        }
    }
    drop(tx);
    // Let answers already computed go out; the writer ends when the last sender is gone.
    let _ = writer.await;
}

async fn handle(node: &Node, req: Request) -> Response {
    match req {
        Request::AppendEntries(rpc) => Response::AppendEntries(node.raft.append_entries(rpc).await),
        Request::Vote(rpc) => Response::Vote(node.raft.vote(rpc).await),
        Request::FullSnapshot { vote, meta, data } => {
            let snapshot = Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data.into_bytes())),
            };
            Response::FullSnapshot(node.raft.install_full_snapshot(vote, snapshot).await)
        }
        Request::Propose(cmd) => Response::Propose(node.propose_local(cmd).await),
        Request::Heartbeat(hb) => Response::Heartbeat(node.heartbeat_local(hb).await),
        Request::AddLearner { id, addr } => {
            Response::AddLearner(node.add_learner_local(id, addr).await)
        }
    }
}
