package compat

// clientSendsOffsetCommitV1 says whether this sarama's ConsumerGroup commits offsets with
// OffsetCommit v1 whatever config.Version says (unless Consumer.Offsets.Retention is set, which
// selects v2). True of github.com/Shopify/sarama v1.38.1 (scripts/sync-go-shopify.sh sets it in
// compat/go-shopify); github.com/IBM/sarama picks the version from config.Version. Kafka 4 removed
// OffsetCommit v0-v1 (KIP-896) and closes the connection on them; Ringbolt serves them (issue 15),
// so the tests that commit with v1 run with RINGBOLT_COMPAT_LEGACY=1 (see requireOffsetCommitV1).
const clientSendsOffsetCommitV1 = false
