#!/usr/bin/env bash
# The project's local Apache Kafka broker: one JVM in KRaft mode, broker and controller in one
# (`make kafka-bin`, `make kafka`, `make kafka-stop`; the test suite's `kafka_bootstrap` fixture).
#
#   deploy/kafka.sh install     resolve the pinned broker jars from Maven Central into .data/kafka/libs (once per pom),
#                               each checked against deploy/kafka/jars.sha256
#   deploy/kafka.sh pin         after a change to the pom: resolve afresh and rewrite deploy/kafka/jars.sha256
#   deploy/kafka.sh version     print the pinned Kafka version
#   deploy/kafka.sh start       make sure a broker answers on 127.0.0.1:$KAFKA_PORT (reused if one does)
#   deploy/kafka.sh stop        stop the broker that `start` launched (found by its pidfile)
#   deploy/kafka.sh status      say whether a broker answers and whether this project started it (exit 3: none does)
#   deploy/kafka.sh bootstrap   print the bootstrap address, 127.0.0.1:$KAFKA_PORT
#
# Environment (defaults in brackets):
#   KAFKA_PORT [9092]             the PLAINTEXT listener, the one clients use
#   KAFKA_CONTROLLER_PORT [9093]  the KRaft controller listener
#   KAFKA_DATA_DIR [.data/kafka]  rendered server.properties, cluster id, topic data (log/), kafka.log, pidfile
#   KAFKA_HEAP_OPTS [-Xmx512m -Xms256m]
#   KAFKA_PYTHON [.venv/bin/python]  a Python with aiokafka, for the readiness check (the Makefile passes its venv's)
#
# The version is pinned in deploy/kafka/pom.xml (kafka.version), which fixes every transitive jar's version too;
# deploy/kafka/jars.sha256 holds the SHA-256 of each jar, so an install gets exactly those files or fails (Maven
# also checks each download against the repository's checksum: -C). The jars and the Maven repository they came
# through (.data/m2) stay under the git-ignored .data/. Needs Java 17+ and Maven (installed from Debian's
# packages when missing), and the project's venv: readiness is a real metadata request made with aiokafka.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here="$repo/deploy/kafka"
pom="$here/pom.xml"
checksums="$here/jars.sha256"
libs_dir="$repo/.data/kafka/libs"
stamp="$libs_dir/.installed"
m2_dir="$repo/.data/m2"
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
data_dir=${KAFKA_DATA_DIR:-$repo/.data/kafka}
heap_opts=${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}
config="$data_dir/server.properties"
log_dir="$data_dir/log"
cluster_id_file="$data_dir/cluster-id"
pidfile="$data_dir/kafka.pid"
logfile="$data_dir/kafka.log"
outfile="$data_dir/kafka.out"
python=${KAFKA_PYTHON:-$repo/.venv/bin/python}
bootstrap_address="127.0.0.1:$port"
start_wait=60
stop_wait=30

kafka_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom"
}

# What the stamp holds: the checksum of the pom and the jar checksums, so that any change to the pinned artifacts
# re-resolves them.
pom_digest() {
  cat "$pom" "$checksums" | sha256sum | cut -d' ' -f1
}

# The data dir as a person reads it: relative to the repo when it is inside it.
shown_dir() {
  echo "${data_dir#"$repo/"}"
}

ensure_tools() {
  local packages=()
  command -v java >/dev/null || packages+=(default-jre-headless) # Java 17 on Debian 12
  command -v mvn >/dev/null || packages+=(maven)
  ((${#packages[@]} == 0)) && return
  echo "kafka: installing the Debian packages ${packages[*]}"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
}

# The major version of the java on the PATH: 17 from "17.0.15", 1 from "1.8.0_392".
java_major() {
  java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p'
}

install() {
  ensure_tools
  local version
  version=$(kafka_version)
  if [[ -f $stamp && $(<"$stamp") == "$(pom_digest)" ]]; then
    echo "kafka: broker jars for Kafka $version already in .data/kafka/libs"
    return
  fi
  echo "kafka: resolving Apache Kafka $version (kafka_2.13) and its runtime jars from Maven Central into .data/kafka/libs"
  # Into a fresh folder, then swapped in whole: jars of two versions must never share the classpath.
  local staging="$libs_dir.partial"
  resolve "$staging"
  verify "$staging"
  pom_digest >"$staging/.installed"
  rm -rf "$libs_dir"
  mv "$staging" "$libs_dir"
  echo "kafka: $(find "$libs_dir" -name '*.jar' | wc -l) jars installed, each matching deploy/kafka/jars.sha256"
}

# Copies the pom's runtime jars into the fresh folder $1.
resolve() {
  rm -rf "$1"
  # Maven prints its errors on stdout, and stray colour codes even when quiet: shown only when it fails.
  local output
  output=$(mvn -B -q -C -f "$pom" -Dmaven.repo.local="$m2_dir" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$1" 2>&1) || {
    printf '%s\n' "$output" >&2
    fail "could not resolve the broker jars from Maven Central (Maven's output above)"
  }
}

# The jars in $1 are exactly the ones jars.sha256 names, byte for byte.
verify() {
  local listed found
  (cd "$1" && sha256sum --check --quiet --strict "$checksums") >&2 ||
    fail "a broker jar does not match deploy/kafka/jars.sha256 (above); nothing was installed"
  listed=$(awk '{ print $2 }' "$checksums" | sort)
  found=$(cd "$1" && find . -name '*.jar' -printf '%f\n' | sort)
  [[ $listed == "$found" ]] || fail "Maven resolved jars that deploy/kafka/jars.sha256 does not list:" \
    "$(comm -13 <(echo "$listed") <(echo "$found") | tr '\n' ' ')(after changing the pom: deploy/kafka.sh pin)"
}

# After a deliberate change to the pom: resolve it afresh and record each jar's checksum.
pin() {
  ensure_tools
  local staging="$libs_dir.pin"
  resolve "$staging"
  (cd "$staging" && find . -name '*.jar' -printf '%f\n' | LC_ALL=C sort | xargs sha256sum) >"$checksums"
  rm -rf "$staging"
  echo "kafka: pinned $(wc -l <"$checksums") jars of Kafka $(kafka_version) in deploy/kafka/jars.sha256"
}

version() {
  kafka_version
}

# Waits until a metadata request to the broker names at least one live broker; gives up after $1 seconds,
# or as soon as the process $2 (when given) is gone. Exit 0: ready; 1: no answer in time; 2: the process died.
metadata_ready() {
  "$python" - "$bootstrap_address" "$1" "${2:-0}" <<'PY'
import asyncio
import contextlib
import logging
import os
import sys

from aiokafka import AIOKafkaClient

logging.disable(logging.CRITICAL)  # refused connections while it starts are expected, not news


def alive(pid: int) -> bool:
    if pid == 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[-1][:1] != "Z"
    return False


async def main(bootstrap: str, seconds: float, pid: int) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if not alive(pid):
            return 2
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000, retry_backoff_ms=100)
        try:
            await asyncio.wait_for(client.bootstrap(), timeout=3)
            if client.cluster.brokers():
                return 0
        except Exception:  # any failure means "not ready yet"; the deadline bounds the loop
            pass
        finally:
            await client.close()
        await asyncio.sleep(0.2)
    return 1


sys.exit(asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))))
PY
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True while the pid is a live JVM running this data dir's broker: not gone, not recycled, not a zombie.
is_our_broker() {
  local stat args
  read -r stat args < <(ps -o stat=,args= -p "$1" 2>/dev/null) || return 1
  [[ $stat != Z* && $args == *" kafka.Kafka $config"* ]]
}

# The pid from our pidfile, if that broker still runs.
our_pid() {
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(<"$pidfile")
  is_our_broker "$pid" && echo "$pid"
}

render_config() {
  local text
  text=$(<"$here/server.properties")
  text=${text//@PORT@/$port}
  text=${text//@CONTROLLER_PORT@/$controller_port}
  text=${text//@LOG_DIR@/$log_dir}
  printf '%s\n' "$text" >"$config"
}

# A Kafka cluster id, as `kafka-storage random-uuid` makes one (without a JVM start): 16 random bytes in URL-safe
# base64 without padding, never starting with '-' (it would read as an option).
new_cluster_id() {
  local id=-
  while [[ $id == -* ]]; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  done
  echo "$id"
}

# Formats the topic data dir once, under a cluster id generated once and kept in the data dir.
format_once() {
  [[ -f $log_dir/meta.properties ]] && return
  [[ -s $cluster_id_file ]] || new_cluster_id >"$cluster_id_file"
  java -cp "$libs_dir/*" -Dlog4j2.configurationFile="$here/log4j2.xml" -Dkafka.logs.dir="$data_dir" \
    kafka.tools.StorageTool format -t "$(<"$cluster_id_file")" -c "$config" >>"$outfile" 2>&1 || {
    tail -n 20 "$outfile" >&2
    fail "formatting $log_dir failed (output above)"
  }
}

launch() {
  # setsid: the broker leaves make's process group, so a Ctrl-C in `make dev` does not take it down.
  # shellcheck disable=SC2086 # heap_opts is a list of JVM flags
  setsid nohup java $heap_opts -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$here/log4j2.xml" -Dkafka.logs.dir="$data_dir" \
    -cp "$libs_dir/*" kafka.Kafka "$config" </dev/null >>"$outfile" 2>&1 &
  echo $! >"$pidfile"
}

start() {
  [[ -f $stamp ]] || fail "the broker jars are not installed; run 'make kafka-bin' (or 'make test', which does)"
  [[ -x $python ]] || fail "the project's venv is missing ($python); run 'make venv'"
  local major
  major=$(java_major)
  ((${major:-0} >= 17)) || fail "Kafka $(kafka_version) needs Java 17 or newer; 'java' here is version ${major:-unknown}"

  local pid
  if pid=$(our_pid); then
    local running_port
    running_port=$(sed -n 's|^listeners=PLAINTEXT://127.0.0.1:\([0-9]*\),.*|\1|p' "$config")
    [[ $running_port == "$port" ]] || fail "the broker of $(shown_dir) already runs on 127.0.0.1:$running_port" \
      "(pid $pid); stop it first (make kafka-stop), or give this one its own KAFKA_DATA_DIR"
    metadata_ready "$start_wait" "$pid" || fail_with_log "the project's broker (pid $pid) does not answer on $bootstrap_address"
    echo "kafka: reusing the project's broker on $bootstrap_address (pid $pid, data in $(shown_dir))"
    return
  fi
  if port_in_use "$port"; then
    metadata_ready 5 || fail "127.0.0.1:$port is taken by something that does not answer as a Kafka broker;" \
      "stop it, or use another port: make kafka KAFKA_PORT=9094"
    echo "kafka: reusing the broker already answering on $bootstrap_address (not started by this project)"
    return
  fi
  port_in_use "$controller_port" && fail "the controller port 127.0.0.1:$controller_port is taken;" \
    "use another: KAFKA_CONTROLLER_PORT=9095"

  mkdir -p "$data_dir"
  render_config
  format_once
  echo "kafka: starting Apache Kafka $(kafka_version) (KRaft) on $bootstrap_address, controller on" \
    "127.0.0.1:$controller_port (data in $(shown_dir), log in $(shown_dir)/kafka.log)"
  launch
  pid=$(<"$pidfile")
  local status=0
  metadata_ready "$start_wait" "$pid" || status=$?
  case $status in
    0) ;;
    2) fail_with_log "the broker exited during start-up" ;;
    *) fail_with_log "the broker (pid $pid) did not answer on $bootstrap_address within ${start_wait}s" ;;
  esac
  echo "kafka: ready; bootstrap address $bootstrap_address"
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$pidfile" # stale: the process is gone
    echo "kafka: the project's broker is not running"
    return
  fi
  # SIGTERM is Kafka's controlled shutdown: it flushes and closes every log.
  kill -TERM "$pid"
  if ! wait_gone "$pid" "$stop_wait"; then
    echo "kafka: the broker (pid $pid) did not stop within ${stop_wait}s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || fail "the broker (pid $pid) survived SIGKILL"
  fi
  rm -f "$pidfile"
  echo "kafka: stopped"
}

wait_gone() {
  local tries=$(($2 * 10))
  while ((tries-- > 0)); do
    is_our_broker "$1" || return 0
    sleep 0.1
  done
  return 1
}

status() {
  local pid
  if pid=$(our_pid); then
    if metadata_ready 3 "$pid"; then
      echo "kafka: running on $bootstrap_address (pid $pid, data in $(shown_dir))"
    else
      echo "kafka: the project's broker (pid $pid) runs but does not answer on $bootstrap_address yet"
      return 1
    fi
  elif port_in_use "$port" && metadata_ready 3; then
    echo "kafka: a broker not started by this project answers on $bootstrap_address"
  else
    echo "kafka: not running (no broker answers on $bootstrap_address)"
    return 3
  fi
}

bootstrap() {
  echo "$bootstrap_address"
}

fail() {
  echo "kafka: $*" >&2
  exit 1
}

fail_with_log() {
  tail -n 30 "$logfile" "$outfile" >&2 2>/dev/null || true
  fail "$* (above: the ends of kafka.log and kafka.out in $(shown_dir))"
}

case ${1:-} in
  install | pin | version | start | stop | status | bootstrap) "$1" ;;
  *)
    echo "usage: $0 install|pin|version|start|stop|status|bootstrap" >&2
    exit 2
    ;;
esac
