#!/bin/sh
# Prepares MinIO for glimpse (idempotent). Run by the `minio-init` service in
# infra/docker-compose.yml with the minio/mc image:
#   - the bucket (BUCKET, default media),
#   - a least-privilege user for the services (policy: /init/glimpse-policy.json),
#   - the bucket notification: put/delete events -> the Kafka target `glimpse`
#     (configured on the server by the MINIO_NOTIFY_KAFKA_*_glimpse variables),
#     which publishes to the topic glimpse.objects.
set -eu

BUCKET="${BUCKET:-media}"

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc ready local

mc mb --ignore-existing "local/$BUCKET"

mc admin policy create local glimpse /init/glimpse-policy.json
mc admin user add local "$APP_ACCESS_KEY" "$APP_SECRET_KEY"
if ! mc admin user info local "$APP_ACCESS_KEY" | grep -q 'PolicyName: glimpse'; then
  mc admin policy attach local glimpse --user "$APP_ACCESS_KEY"
fi

mc event add --ignore-existing "local/$BUCKET" arn:minio:sqs::glimpse:kafka --event put,delete
mc event ls "local/$BUCKET"
