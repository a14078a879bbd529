#!/bin/sh
# Creates glimpse's topics (idempotent). Run by the `kafka-init` service in
# infra/docker-compose.yml with the apache/kafka image; BOOTSTRAP and PARTITIONS come
# from its environment. Auto-creation is off on the broker, so this is the one place
# that names every topic.
set -eu

BOOTSTRAP="${BOOTSTRAP:-kafka:9092}"
PARTITIONS="${PARTITIONS:-3}"
TOPICS_SH=/opt/kafka/bin/kafka-topics.sh

create() {
  topic="$1"; shift
  "$TOPICS_SH" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$topic" --partitions "$PARTITIONS" --replication-factor 1 "$@"
}

create glimpse.objects
create glimpse.images.accepted
create glimpse.audio.accepted
create glimpse.captions.ready
create glimpse.transcripts.ready
create glimpse.queries.voice --config retention.ms=3600000
# dead letters are kept for 30 days so they can be inspected and replayed
create glimpse.dlq --config retention.ms=2592000000

"$TOPICS_SH" --bootstrap-server "$BOOTSTRAP" --list
