"""The subset of Apache Kafka's kafka-topics.sh that librdkafka's test-runner uses.

    kafka-topics.sh --bootstrap-server B --create --topic T --partitions N --replication-factor R
                    [--config K=V ...]
    kafka-topics.sh --bootstrap-server B --alter --topic T --partitions N
    kafka-topics.sh --bootstrap-server B --delete --topic T

Each is one Admin API request (CreateTopics, CreatePartitions, DeleteTopics) through confluent-kafka's
AdminClient, as the real tool sends through Kafka's Admin client; like it, a failed request prints
the error and exits non-zero. Anything else is refused rather than guessed at.
"""

import argparse
import sys

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic


def main() -> int:
    p = argparse.ArgumentParser(prog="kafka-topics.sh")
    p.add_argument("--bootstrap-server", required=True)
    op = p.add_mutually_exclusive_group(required=True)
    op.add_argument("--create", action="store_true")
    op.add_argument("--alter", action="store_true")
    op.add_argument("--delete", action="store_true")
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int)
    p.add_argument("--replication-factor", type=int, default=-1)
    p.add_argument("--config", action="append", default=[])
    a = p.parse_args()

    admin = AdminClient({"bootstrap.servers": a.bootstrap_server})
    if a.create:
        configs = dict(kv.split("=", 1) for kv in a.config)
        futures = admin.create_topics(
            [NewTopic(a.topic, a.partitions or -1, a.replication_factor, config=configs)],
            operation_timeout=30,
        )
        what = "Created topic"
    elif a.alter:
        if a.partitions is None or a.config:
            p.error("--alter supports --partitions only")
        futures = admin.create_partitions([NewPartitions(a.topic, a.partitions)], operation_timeout=30)
        what = "Altered partitions of topic"
    else:
        futures = admin.delete_topics([a.topic], operation_timeout=30)
        what = "Deleted topic"
    try:
        futures[a.topic].result(timeout=60)
    except Exception as e:  # the tool's own behaviour: print the error, exit 1
        print(f"Error while executing topic command : {e}", file=sys.stderr)
        return 1
    print(f"{what} {a.topic}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
