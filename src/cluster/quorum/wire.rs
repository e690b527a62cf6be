//! The controller-to-controller protocol: messages and their framing. No I/O beyond reading and
//! writing one frame on a stream.
//!
//! A frame is `u32 BE length | u64 BE request id | serde_json body`, the length covering the id
//! and the body. Requests and responses travel on one persistent TCP connection per peer; the id
//! pairs a response with its request, so a slow RPC (a snapshot) does not hold up the others.
//! Frames are bounded by [`MAX_FRAME`]; a longer length, a short read or a body that does not
//! decode closes the connection (the caller logs it), never panics.
//!
//! JSON, not a binary codec: openraft's messages already derive serde, metadata RPCs are small,
//! and the snapshot (JSON itself, see the state machine) rides along as a string.

use openraft::error::{Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::types::{NodeId, SnapshotMeta, TypeConfig, Vote};
use crate::cluster::controller::{Heartbeat, HeartbeatReply};
use crate::cluster::image::{MetaCommand, MetaResponse};

/// The largest frame accepted (a snapshot travels in one frame).
pub(crate) const MAX_FRAME: usize = 64 << 20;

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    /// A whole snapshot in one message (metadata images are small).
    FullSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: String,
    },
    /// A client write forwarded to the leader.
    Propose(MetaCommand),
    /// A broker's heartbeat to the active controller.
    Heartbeat(Heartbeat),
    /// A broker-only node asks the leader to replicate the log to it (as a Raft learner).
    AddLearner {
        id: NodeId,
        addr: String,
    },
}

/// The answer to a [`Request`], same variant.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    FullSnapshot(Result<SnapshotResponse<NodeId>, Fatal<NodeId>>),
    Propose(Forwarded<(u64, MetaResponse)>),
    Heartbeat(Forwarded<HeartbeatReply>),
    AddLearner(Forwarded<()>),
}

/// The outcome of a request that only the leader (active controller) serves.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Forwarded<T> {
    Ok(T),
    /// This node is not the leader (or not yet acting as one); `leader` is its best guess.
    NotLeader {
        leader: Option<NodeId>,
    },
    /// The leader tried and failed.
    Failed(String),
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("bad frame: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Encodes one frame.
pub(crate) fn encode<T: Serialize>(id: u64, msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg)?;
    let len = body.len() + 8;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub(crate) async fn read_frame<T, R>(r: &mut R) -> Result<Option<(u64, T)>, FrameError>
where
    T: for<'de> Deserialize<'de>,
    R: AsyncRead + Unpin,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(8..=MAX_FRAME).contains(&len) {
        return Err(FrameError::TooLarge(len));
    }
    // Grow the buffer as bytes arrive rather than trusting the length up front: a peer that
    // announces a large frame and sends little costs little.
    let mut buf = Vec::with_capacity(len.min(64 << 10));
    (&mut *r).take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    let id = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
    let msg = serde_json::from_slice(&buf[8..])?;
    Ok(Some((id, msg)))
}

/// Writes one encoded frame.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &[u8],
) -> std::io::Result<()> {
    w.write_all(frame).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_ones_are_errors() {
        let req = Request::Propose(MetaCommand::DeleteTopic { name: "t".into() });
        let mut bytes = encode(7, &req).unwrap();
        bytes.extend_from_slice(&encode(8, &req).unwrap());
        let mut r = &bytes[..];
        let (id, got) = read_frame::<Request, _>(&mut r).await.unwrap().unwrap();
        assert_eq!(id, 7);
        assert!(matches!(got, Request::Propose(MetaCommand::DeleteTopic { name }) if name == "t"));
        assert_eq!(
            read_frame::<Request, _>(&mut r).await.unwrap().unwrap().0,
            8
        );
        assert!(read_frame::<Request, _>(&mut r).await.unwrap().is_none());

        // Too long, too short, cut off, not JSON.
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_frame::<Request, _>(&mut &huge[..]).await,
            Err(FrameError::TooLarge(_))
        ));
        let tiny = 3u32.to_be_bytes();
        assert!(read_frame::<Request, _>(&mut &tiny[..]).await.is_err());
        let cut = &encode(1, &req).unwrap()[..12];
        assert!(matches!(
            read_frame::<Request, _>(&mut &cut[..]).await,
            Err(FrameError::Io(_))
        ));
        let junk = [&12u32.to_be_bytes()[..], &[0u8; 8], b"{{{{"].concat();
        assert!(matches!(
            read_frame::<Request, _>(&mut &junk[..]).await,
            Err(FrameError::Decode(_))
        ));
    }
}
