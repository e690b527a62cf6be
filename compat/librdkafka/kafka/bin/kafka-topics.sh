#!/usr/bin/env bash
# Stand-in for Apache Kafka's bin/kafka-topics.sh, which librdkafka's test-runner calls (through
# $KAFKA_PATH) to create, grow and delete topics in a few tests (0045, 0052, 0077). It makes the
# same Admin API requests (CreateTopics, CreatePartitions, DeleteTopics) with confluent-kafka's
# AdminClient from the compat venv, so no Kafka distribution or JVM is needed. See kafka_topics.py.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "${LIBRDKAFKA_PYTHON:-$here/../../../.venv/bin/python}" "$here/../kafka_topics.py" "$@"
