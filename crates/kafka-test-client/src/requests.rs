//! Builders of the requests the tests and tools send most, and [`Client`] calls built on them.
//!
//! The builders set what a plain consumer or producer sets (replica id -1, replication factor 1,
//! no fetch session) and leave the rest at kafka-protocol's defaults; a caller adjusts the result
//! with the `with_*` methods. The `Client` calls are for tests: they panic on any failure and
//! return the fields a test checks.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;

/// A `StrBytes` of `s`.
pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A `TopicName` of `s`.
pub fn tn(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// CreateTopics of one topic with replication factor 1 and the given configs (kafka-protocol's
/// default timeout, 60 s).
pub fn create_topic_request(
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreateTopicsRequest {
    CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(tn(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(sb(k))
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            ),
    ])
}

/// Produce to `topic`: one `(partition, record batches)` each.
pub fn produce_request(
    topic: TopicName,
    acks: i16,
    timeout_ms: i32,
    batches: impl IntoIterator<Item = (i32, Bytes)>,
) -> ProduceRequest {
    let partition_data = batches
        .into_iter()
        .map(|(p, b)| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(b))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic)
                .with_partition_data(partition_data),
        ])
}

/// One partition of a Fetch: read `partition` from `offset`, at most `max_bytes`.
pub fn fetch_partition(partition: i32, offset: i64, max_bytes: i32) -> FetchPartition {
    FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(max_bytes)
}

/// A consumer's Fetch (no session) of `partitions` of `topic`.
pub fn fetch_request(
    topic: TopicName,
    partitions: impl IntoIterator<Item = FetchPartition>,
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic)
                .with_partitions(partitions.into_iter().collect()),
        ])
}

/// A consumer's ListOffsets of `topic`: one `(partition, timestamp)` each (-1 latest, -2
/// earliest, -3 max timestamp).
pub fn list_offsets_request(
    topic: TopicName,
    partitions: impl IntoIterator<Item = (i32, i64)>,
) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(p, ts)| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(ts)
                        })
                        .collect(),
                ),
        ])
}

/// Metadata of the named topics (auto-creation allowed, kafka-protocol's default).
pub fn metadata_request(topics: &[&str]) -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(tn(t))))
            .collect(),
    ))
}

impl Client {
    /// Creates one topic (timeout 5 s); returns the response.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
        version: i16,
    ) -> CreateTopicsResponse {
        let req = create_topic_request(name, partitions, configs).with_timeout_ms(5000);
        self.call(ApiKey::CreateTopics, version, &req)
    }

    /// Produce of one batch to one partition (timeout 5 s).
    pub fn produce_req(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
        produce_request(tn(topic), acks, 5000, [(partition, records)])
    }

    /// Produces one batch; returns (error code, base offset).
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        acks: i16,
        records: Bytes,
        version: i16,
    ) -> (i16, i64) {
        let r: ProduceResponse = self.call(
            ApiKey::Produce,
            version,
            &Self::produce_req(topic, partition, acks, records),
        );
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    /// Fetch of one partition: up to 1 MiB of it, 50 MiB in all.
    pub fn fetch_req(
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        min_bytes: i32,
    ) -> FetchRequest {
        fetch_request(
            tn(topic),
            [fetch_partition(partition, offset, 1 << 20)],
            max_wait_ms,
            min_bytes,
            50 << 20,
        )
    }

    /// Fetches one partition without waiting; returns (error, high watermark, records bytes).
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        version: i16,
    ) -> (i16, i64, Bytes) {
        let r: FetchResponse = self.call(
            ApiKey::Fetch,
            version,
            &Self::fetch_req(topic, partition, offset, 0, 0),
        );
        let p = &r.responses[0].partitions[0];
        (
            p.error_code,
            p.high_watermark,
            p.records.clone().unwrap_or_default(),
        )
    }

    /// ListOffsets of one partition at `timestamp`; returns the partition's answer.
    pub fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        version: i16,
    ) -> ListOffsetsPartitionResponse {
        let req = list_offsets_request(tn(topic), [(partition, timestamp)]);
        let mut r: ListOffsetsResponse = self.call(ApiKey::ListOffsets, version, &req);
        r.topics.swap_remove(0).partitions.swap_remove(0)
    }
}
