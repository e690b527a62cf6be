//! DescribeLogDirs (key 35), v1–v4 (what Kafka 4 serves and kafka-clients 4.x / `kafka-log-dirs`
//! send): the broker's one log directory, the data dir, with the partitions in it.
//!
//! As Kafka's `ReplicaManager.describeLogDirs`:
//! - `topics` null asks for every partition; otherwise for the listed ones, of which those the
//!   broker does not have are left out, and so is a topic left with none (as Kafka 4.3 answers);
//! - `partition_size` is the log's size (its segments' bytes, `PartitionLog::size_bytes`),
//!   `offset_lag` 0 (the log is the leader's own: nothing to catch up with), `is_future_key`
//!   false (no replica is being moved between directories);
//! - v4: `total_bytes` and `usable_bytes` of the volume, from `statvfs(2)` (Java's
//!   `FileStore.getTotalSpace` / `getUsableSpace`: blocks and blocks available to unprivileged
//!   users, times the fragment size); -1 when `statvfs` fails;
//! - v3+: a top-level error code, CLUSTER_AUTHORIZATION_FAILED without DESCRIBE on the cluster.
//!
//! The partitions live on their owner shards: each shard reports its own logs (one hop per shard,
//! all at once).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResponse, DescribeLogDirsResult, DescribeLogDirsTopic,
};

use super::{HandlerError, Reply, Request, topic_name};
use crate::server::authz::{self, AclOperation, CLUSTER_NAME, ResourceType};
use crate::shard;
use crate::sync::join_all;
use crate::util::sb;

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 4;

/// (topic, partition, size in bytes) of every log, gathered from every shard.
async fn logs_of_every_shard(n_shards: usize) -> Vec<(String, i32, u64)> {
    let mut futs: Vec<Pin<Box<dyn Future<Output = _>>>> = Vec::with_capacity(n_shards);
    for id in 0..n_shards {
        futs.push(Box::pin(shard::run_on(id, |ctx| async move {
            ctx.all_logs()
                .into_iter()
                .map(|(t, p, log)| (t, p, log.size_bytes()))
                .collect::<Vec<_>>()
        })));
    }
    let mut all = Vec::new();
    for (id, res) in join_all(futs).await.into_iter().enumerate() {
        match res {
            Ok(logs) => all.extend(logs),
            Err(e) => tracing::warn!(shard = id, error = %e, "DescribeLogDirs: shard unreachable"),
        }
    }
    all
}

/// (total, usable) bytes of the volume holding `dir`, as Java's `FileStore` reports them.
fn volume_bytes(dir: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `st` points to writable memory of the right
    // type; statvfs(3) fills it on success, and it is read only then.
    let st = unsafe {
        if libc::statvfs(path.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    let frag = st.f_frsize as u64;
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Some((
        clamp((st.f_blocks as u64).saturating_mul(frag)),
        clamp((st.f_bavail as u64).saturating_mul(frag)),
    ))
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DescribeLogDirsRequest = req.decode()?;
    let ctx = req.ctx.clone();
    if !authz::authorize(
        req.principal(),
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        return req.respond(
            &DescribeLogDirsResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
        );
    }
    let wanted: Option<HashSet<(String, i32)>> = r.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                let name = t.topic.0.as_str();
                t.partitions.iter().map(move |&p| (name.to_string(), p))
            })
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (topic, partition, size) in logs_of_every_shard(ctx.n_shards).await {
        let parts = by_topic.entry(topic.clone()).or_default();
        if wanted
            .as_ref()
            .is_none_or(|w| w.contains(&(topic, partition)))
        {
            parts.push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(partition)
                    .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                    .with_offset_lag(0)
                    .with_is_future_key(false),
            );
        }
    }
    let topics = by_topic
        .into_iter()
        .filter(|(_, parts)| !parts.is_empty())
        .map(|(name, mut parts)| {
            parts.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(parts)
        })
        .collect();
    let dir = &ctx.info.data_dir;
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let (total, usable) = volume_bytes(&abs).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(sb(&abs.to_string_lossy()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    req.respond(&DescribeLogDirsResponse::default().with_results(vec![result]))
}
