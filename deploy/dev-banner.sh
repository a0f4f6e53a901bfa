#!/usr/bin/env bash
# The banner `make dev` prints before it starts the server: where it serves, the developer credentials and
# copy-paste boto3 / AWS CLI examples. Printing the secret is deliberate: this is a local development setup
# and the banner is the one place that shows it.
#
#   deploy/dev-banner.sh URL      (reads SYNCSVC_DEVELOPER_CREDENTIALS, SYNCSVC_REDIS_URL, SYNCSVC_REGION)
set -euo pipefail

url=${1:?usage: $0 URL}
region=${SYNCSVC_REGION:-us-east-1}
credentials=${SYNCSVC_DEVELOPER_CREDENTIALS:?SYNCSVC_DEVELOPER_CREDENTIALS is not set}

# The examples use the first pair; its secret is everything after the first ':'.
first=${credentials%%,*}
key_id=${first%%:*}
secret=${first#*:}
# The versions this run serves with: the venv's (uv.lock's) syncsvc and Python, the Redis that answers, the pinned
# Kafka jars.
runtime=$(.venv/bin/python -c 'import importlib.metadata as m, platform
print("syncsvc", m.version("syncsvc"), "on Python", platform.python_version())')
redis_version=$(redis-cli -u "${SYNCSVC_REDIS_URL:-redis://127.0.0.1:6379/0}" INFO server 2>/dev/null |
  sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p')
kafka_version=$(deploy/kafka.sh version)

more=""
if [[ $credentials == *,* ]]; then
  more="  (SYNCSVC_DEVELOPER_CREDENTIALS holds more pairs; the examples use the first)"
fi

cat <<BANNER

  syncsvc (development)
  ---------------------
  serving      $url
  console      $url/console  (sign in with the developer credentials below)
  metrics      $url/metrics  (Prometheus; dashboard to import: deploy/grafana/syncsvc.json)
  versions     $runtime (dependencies as uv.lock pins them), Redis ${redis_version:-unknown}, Apache Kafka $kafka_version
  redis        ${SYNCSVC_REDIS_URL:-redis://127.0.0.1:6379/0}  (AOF on; data in .data/redis; 'make redis-stop' stops it)
  kafka        ${SYNCSVC_KAFKA_BOOTSTRAP:-127.0.0.1:9092}  (KRaft; data in .data/kafka; 'make kafka-stop' stops it)
  region       $region

  Developer credentials (local development only; a generated pair is kept in .data/developer-credentials):
    access key id      $key_id
    secret access key  $secret$more

  boto3 (paste into another terminal):

.venv/bin/python - <<'EOF'
import uuid

import boto3

kw = dict(endpoint_url="$url", region_name="$region",
          aws_access_key_id="$key_id", aws_secret_access_key="$secret")
identity = boto3.client("cognito-identity", **kw)
pool = identity.create_identity_pool(IdentityPoolName="demo", AllowUnauthenticatedIdentities=True)["IdentityPoolId"]
sync = boto3.client("cognito-sync", **kw)
me = dict(IdentityPoolId=pool, IdentityId=f"$region:{uuid.uuid4()}", DatasetName="settings")
token = sync.list_records(**me)["SyncSessionToken"]
sync.update_records(**me, SyncSessionToken=token,
                    RecordPatches=[{"Op": "replace", "Key": "theme", "Value": "dark", "SyncCount": 0}])
print(sync.list_records(**me)["Records"])
EOF

  AWS CLI:

AWS_ACCESS_KEY_ID=$key_id AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=$region \\
  aws --endpoint-url $url cognito-identity list-identity-pools --max-results 10

  Ctrl-C stops the server.

BANNER
