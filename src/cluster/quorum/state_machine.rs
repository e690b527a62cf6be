//! The replicated state machine: a [`ClusterImage`] that every committed command is applied to,
//! with snapshots that bound the log.
//!
//! The image lives in memory only; what survives a restart is the latest snapshot
//! (`raft-snapshot.json`, replaced crash-safely) plus the log above it, which openraft applies
//! again on start up to the committed index the log store recorded. A snapshot is the JSON of
//! the image; its metadata (last applied log id, membership, snapshot id) travels next to it, in
//! openraft's `SnapshotMeta`, and is stored with it in the file. JSON keeps snapshots readable
//! and, being UTF-8, lets the transport carry them inside its JSON frames as a string.
//!
//! After every applied batch the new image is published on a tokio watch channel as an
//! `Arc<ClusterImage>`: the broker side (shard 0) and the active controller read it from there.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::log_store::{read_json, write_atomic};
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::cluster::image::{ClusterImage, MetaResponse};

const SNAPSHOT_FILE: &str = "raft-snapshot.json";

/// `raft-snapshot.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    image: ClusterImage,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    image: ClusterImage,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The latest snapshot: its metadata and serialized image.
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// Snapshots built so far by this process (part of the snapshot id).
    built: u64,
    publish: watch::Sender<Arc<ClusterImage>>,
}

/// The state machine openraft drives. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub(crate) struct StateMachine {
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

impl StateMachine {
    /// Loads the latest snapshot from `dir` (if any) and publishes its image.
    pub(crate) fn open(
        dir: &Path,
        publish: watch::Sender<Arc<ClusterImage>>,
    ) -> std::io::Result<StateMachine> {
        let loaded: Option<SnapshotFile> = read_json(&dir.join(SNAPSHOT_FILE))?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            image: ClusterImage::default(),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot: None,
            built: 0,
            publish,
        };
        if let Some(file) = loaded {
            let data = serde_json::to_vec(&file.image)?;
            inner.last_applied = file.meta.last_log_id;
            inner.membership = file.meta.last_membership.clone();
            inner.image = file.image;
            inner.snapshot = Some((file.meta, data));
            inner.publish_image();
        }
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(inner)),
        })
    }
}

impl StateMachine {
    /// A receiver of the images this state machine publishes.
    pub(crate) fn image_rx(&self) -> watch::Receiver<Arc<ClusterImage>> {
        lock(&self.inner).publish.subscribe()
    }
}

impl Inner {
    fn publish_image(&self) {
        self.publish.send_replace(Arc::new(self.image.clone()));
    }

    fn persist(&self, meta: &SnapshotMeta) -> std::io::Result<()> {
        let file = SnapshotFile {
            meta: meta.clone(),
            image: self.image.clone(),
        };
        write_atomic(&self.dir, SNAPSHOT_FILE, &serde_json::to_vec(&file)?)
    }
}

fn sm_err<E: std::error::Error + 'static>(e: &E) -> StorageError {
    StorageIOError::write_state_machine(e).into()
}

fn snap_err<E: std::error::Error + 'static>(e: &E) -> StorageError {
    StorageIOError::write_snapshot(None, e).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let mut inner = lock(&self.inner);
        inner.built += 1;
        let last = inner.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: inner.membership.clone(),
            snapshot_id: format!(
                "{}-{}-{}",
                last.map_or(0, |l| l.leader_id.term),
                last.map_or(0, |l| l.index),
                inner.built
            ),
        };
        let data = serde_json::to_vec(&inner.image).map_err(|e| snap_err(&e))?;
        inner.persist(&meta).map_err(|e| snap_err(&e))?;
        inner.snapshot = Some((meta.clone(), data.clone()));
        tracing::debug!(snapshot = %meta.snapshot_id, "metadata quorum: snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let inner = lock(&self.inner);
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetaResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = lock(&self.inner);
        let mut out = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            inner.last_applied = Some(entry.log_id);
            let resp = match entry.payload {
                EntryPayload::Blank => {
                    inner.image.applied_index = index;
                    MetaResponse::Ok
                }
                EntryPayload::Normal(cmd) => inner.image.apply(index, &cmd),
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m);
                    inner.image.applied_index = index;
                    MetaResponse::Ok
                }
            };
            out.push(resp);
        }
        if !out.is_empty() {
            inner.publish_image();
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let image: ClusterImage = serde_json::from_slice(&data).map_err(|e| sm_err(&e))?;
        let mut inner = lock(&self.inner);
        inner.image = image;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.persist(meta).map_err(|e| snap_err(&e))?;
        inner.snapshot = Some((meta.clone(), data));
        inner.publish_image();
        tracing::info!(snapshot = %meta.snapshot_id, "metadata quorum: snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let inner = lock(&self.inner);
        Ok(inner.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}
