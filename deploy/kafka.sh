#!/usr/bin/env bash
# The project's local Apache Kafka: one broker (a JVM in KRaft mode, broker and controller in one), or a cluster of
# KAFKA_BROKERS such nodes on loopback (`make kafka-bin`, `make kafka [KAFKA_BROKERS=3]`, `make kafka-stop`; the test
# suite's `kafka_bootstrap` and `kafka_cluster_bootstrap` fixtures).
#
#   deploy/kafka.sh install     resolve the pinned broker jars from Maven Central into .data/kafka/libs (once per pom),
#                               each checked against deploy/kafka/jars.sha256
#   deploy/kafka.sh pin         after a change to the pom: resolve afresh and rewrite deploy/kafka/jars.sha256
#   deploy/kafka.sh version     print the pinned Kafka version
#   deploy/kafka.sh start       make sure a broker answers on 127.0.0.1:$KAFKA_PORT (reused if one does); with
#                               KAFKA_BROKERS=N, that each of the N nodes answers and sees all N brokers (a node that
#                               is not running, e.g. after a kill -9, is started; the running ones are kept)
#   deploy/kafka.sh stop        stop every broker that `start` launched in KAFKA_DATA_DIR, one or a cluster's nodes
#                               (found by their pidfiles)
#   deploy/kafka.sh status      say whether a broker answers and whether this project started it (exit 3: none does;
#                               with KAFKA_BROKERS=N one line per node, exit 1 while some but not all run)
#   deploy/kafka.sh bootstrap   print the bootstrap address, 127.0.0.1:$KAFKA_PORT (a cluster: every node's, with commas)
#
# Environment (defaults in brackets):
#   KAFKA_BROKERS [1]             how many nodes. 1: the single broker, everything as below. N > 1 (at most 9): node n
#                                 (1..N) has node.id n, its own folder KAFKA_DATA_DIR/node<n> (server.properties, log/,
#                                 kafka.log, kafka.out, kafka.pid) and its own ports, and every node is a voter of one
#                                 static controller quorum; topics default to replication factor min(N, 3) and a
#                                 minimum ISR of 2 from 3 nodes on (1 below), the offsets and transaction state topics
#                                 included, so a cluster of 3 keeps working with one node down
#   KAFKA_PORT [9092]             the PLAINTEXT listener, the one clients use; node n of a cluster: KAFKA_PORT+2(n-1)
#                                 (9092, 9094, 9096)
#   KAFKA_CONTROLLER_PORT [9093]  the KRaft controller listener; node n: KAFKA_CONTROLLER_PORT+2(n-1) (9093, 9095, 9097)
#   KAFKA_PORTS, KAFKA_CONTROLLER_PORTS [unset]  comma-separated, one port per node, instead of the scheme above
#   KAFKA_DATA_DIR [.data/kafka]  rendered server.properties, cluster id, topic data (log/), kafka.log, pidfile
#                                 (a cluster: the cluster id here, the rest in node<n>/)
#   KAFKA_HEAP_OPTS [-Xmx512m -Xms256m; a cluster's nodes: -Xmx384m -Xms128m each]
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
brokers=${KAFKA_BROKERS:-1}
[[ $brokers =~ ^[1-9]$ ]] || {
  echo "kafka: KAFKA_BROKERS is a node count from 1 to 9, not '$brokers'" >&2
  exit 1
}
first_port=${KAFKA_PORT:-9092}
first_controller_port=${KAFKA_CONTROLLER_PORT:-9093}
data_dir=${KAFKA_DATA_DIR:-$repo/.data/kafka}
if [[ $brokers == 1 ]]; then
  heap_opts=${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}
else
  heap_opts=${KAFKA_HEAP_OPTS:--Xmx384m -Xms128m}
fi
cluster_id_file="$data_dir/cluster-id"
python=${KAFKA_PYTHON:-$repo/.venv/bin/python}
# A cluster's nodes start together and elect a controller first: they get longer.
start_wait=$((brokers == 1 ? 60 : 120))
stop_wait=30

# Each node's ports and folder, indexed by node id (1..brokers); set by plan_nodes.
node_ports=()
node_controller_ports=()
node_dirs=()
bootstrap_address=
# The node that use_node chose, and its files.
node=
node_dir=
port=
controller_port=
config=
log_dir=
pidfile=
logfile=
outfile=

kafka_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom"
}

# What the stamp holds: the checksum of the pom and the jar checksums, so that any change to the pinned artifacts
# re-resolves them.
pom_digest() {
  cat "$pom" "$checksums" | sha256sum | cut -d' ' -f1
}

# A folder as a person reads it (the data dir when none is given): relative to the repo when it is inside it.
shown_dir() {
  local folder=${1:-$data_dir}
  echo "${folder#"$repo/"}"
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

# Each node's ports and folder: node n listens on KAFKA_PORT+2(n-1) and KAFKA_CONTROLLER_PORT+2(n-1), or on the n-th
# of KAFKA_PORTS and KAFKA_CONTROLLER_PORTS; a single broker lives in the data dir itself, a cluster's node n in
# node<n>/ below it.
plan_nodes() {
  local ports=() controller_ports=() n
  [[ -z ${KAFKA_PORTS:-} ]] || IFS=, read -ra ports <<<"$KAFKA_PORTS"
  [[ -z ${KAFKA_CONTROLLER_PORTS:-} ]] || IFS=, read -ra controller_ports <<<"$KAFKA_CONTROLLER_PORTS"
  ((${#ports[@]} == 0 || ${#ports[@]} == brokers)) ||
    fail "KAFKA_PORTS names ${#ports[@]} ports for $brokers brokers"
  ((${#controller_ports[@]} == 0 || ${#controller_ports[@]} == brokers)) ||
    fail "KAFKA_CONTROLLER_PORTS names ${#controller_ports[@]} ports for $brokers brokers"
  local addresses=()
  for ((n = 1; n <= brokers; n++)); do
    node_ports[n]=${ports[n - 1]:-$((first_port + 2 * (n - 1)))}
    node_controller_ports[n]=${controller_ports[n - 1]:-$((first_controller_port + 2 * (n - 1)))}
    node_dirs[n]=$data_dir
    ((brokers == 1)) || node_dirs[n]=$data_dir/node$n
    addresses+=("127.0.0.1:${node_ports[n]}")
  done
  local all=("${node_ports[@]}" "${node_controller_ports[@]}")
  [[ $(printf '%s\n' "${all[@]}" | sort -u | wc -l) == "${#all[@]}" ]] ||
    fail "two listeners would share a port: clients ${node_ports[*]}, controllers ${node_controller_ports[*]}"
  bootstrap_address=$(IFS=,; echo "${addresses[*]}")
}

# Makes node $1 the one the functions below work on.
use_node() {
  node=$1
  node_dir=${node_dirs[node]}
  port=${node_ports[node]}
  controller_port=${node_controller_ports[node]}
  config="$node_dir/server.properties"
  log_dir="$node_dir/log"
  pidfile="$node_dir/kafka.pid"
  logfile="$node_dir/kafka.log"
  outfile="$node_dir/kafka.out"
}

# Waits until a metadata request to each of the addresses $1 (comma-separated) names at least $2 live brokers; gives
# up after $3 seconds, or as soon as one of the processes $4 (comma-separated, when given) is gone. Exit 0: ready;
# 1: no full answer in time; 2: a process died.
metadata_ready() {
  "$python" - "$1" "$2" "$3" "${4:-}" <<'PY'
import asyncio
import contextlib
import logging
import os
import sys

from aiokafka import AIOKafkaClient

logging.disable(logging.CRITICAL)  # refused connections while it starts are expected, not news


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[-1][:1] != "Z"
    return False


async def answers(address: str, brokers: int) -> bool:
    """The node at ``address`` itself answers, and knows of ``brokers`` live brokers."""
    client = AIOKafkaClient(bootstrap_servers=address, request_timeout_ms=2000, retry_backoff_ms=100)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=3)
        return len(client.cluster.brokers()) >= brokers
    except Exception:  # any failure means "not ready yet"; the caller's deadline bounds the wait
        return False
    finally:
        await client.close()


async def main(addresses: list[str], brokers: int, seconds: float, pids: list[int]) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if not all(map(alive, pids)):
            return 2
        if all(await asyncio.gather(*(answers(address, brokers) for address in addresses))):
            return 0
        await asyncio.sleep(0.2)
    return 1


addresses, brokers, seconds, pids = sys.argv[1:]
sys.exit(asyncio.run(main(addresses.split(","), int(brokers), float(seconds), [int(p) for p in pids.split(",") if p])))
PY
}

# Waits up to $1 seconds until every planned node answers and sees them all, while the processes $2… (when given)
# live; exit status as metadata_ready's.
nodes_ready() {
  local seconds=$1 pids
  shift
  pids=$(IFS=,; echo "$*")
  metadata_ready "$bootstrap_address" "$brokers" "$seconds" "$pids"
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True while the pid $1 is a live JVM running the broker of the folder $2: not gone, not recycled, not a zombie.
# -ww: the whole command line whatever COLUMNS says (ps cuts it at COLUMNS, and the folder comes after the classpath).
is_broker_of() {
  local stat args
  read -r stat args < <(ps -ww -o stat=,args= -p "$1" 2>/dev/null) || return 1
  [[ $stat != Z* && $args == *" kafka.Kafka $2/server.properties"* ]]
}

# The pid from the pidfile of the broker folder $1 (the current node's when none is given), if that broker still runs.
our_pid() {
  local folder=${1:-$node_dir} pid
  [[ -f $folder/kafka.pid ]] || return 1
  pid=$(<"$folder/kafka.pid")
  is_broker_of "$pid" "$folder" && echo "$pid"
}

# Every broker folder of the data dir whose broker runs: the single broker's and any cluster node's.
running_folders() {
  local folder
  for folder in "$data_dir" "$data_dir"/node*; do
    [[ -d $folder ]] && our_pid "$folder" >/dev/null && echo "$folder"
  done
  return 0
}

# The settings of the current node that a cluster changes in the single-node template: its id, the controller
# quorum of every node, and replication: a factor of min(N, 3) and a minimum ISR of 2 from 3 nodes on, for the
# internal topics (consumer offsets, transaction state) as for a topic created without its own values.
cluster_settings() {
  local rf=$((brokers < 3 ? brokers : 3)) min_isr=$((brokers < 3 ? 1 : 2)) voters=() n
  for ((n = 1; n <= brokers; n++)); do
    voters+=("$n@127.0.0.1:${node_controller_ports[n]}")
  done
  cat <<SETTINGS
node.id=$node
controller.quorum.voters=$(IFS=,; echo "${voters[*]}")
default.replication.factor=$rf
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
SETTINGS
}

render_config() {
  local text
  text=$(<"$here/server.properties")
  text=${text//@PORT@/$port}
  text=${text//@CONTROLLER_PORT@/$controller_port}
  text=${text//@LOG_DIR@/$log_dir}
  if ((brokers == 1)); then
    printf '%s\n' "$text" >"$config"
    return
  fi
  # A cluster node: the template's lines for the keys of cluster_settings replaced in place, each exactly once.
  local settings
  settings=$(cluster_settings)
  {
    echo "# Node $node of $brokers (KAFKA_BROKERS=$brokers), rendered by deploy/kafka.sh: node.id, the controller quorum"
    echo "# and the replication settings below are this cluster's, in place of the single-node template's values."
    awk -F= 'NR == FNR { wanted[$1] = $0; next }
      ($1 in wanted) { print wanted[$1]; done[$1]++; next }
      { print }
      END { for (key in wanted) if (done[key] != 1) { print key > "/dev/stderr"; failed = 1 } exit failed }' \
      <(printf '%s\n' "$settings") <(printf '%s\n' "$text")
  } >"$config" 2>"$config.missing" ||
    fail "deploy/kafka/server.properties no longer sets each of: $(tr '\n' ' ' <"$config.missing")(once each)"
  rm -f "$config.missing"
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

# Formats the node's topic data dir once, under a cluster id generated once and kept in the data dir (every node of
# a cluster shares it).
format_once() {
  [[ -f $log_dir/meta.properties ]] && return
  [[ -s $cluster_id_file ]] || new_cluster_id >"$cluster_id_file"
  java -cp "$libs_dir/*" -Dlog4j2.configurationFile="$here/log4j2.xml" -Dkafka.logs.dir="$node_dir" \
    kafka.tools.StorageTool format -t "$(<"$cluster_id_file")" -c "$config" >>"$outfile" 2>&1 || {
    tail -n 20 "$outfile" >&2
    fail "formatting $log_dir failed (output above)"
  }
}

launch() {
  # setsid: the broker leaves make's process group, so a Ctrl-C in `make dev` does not take it down.
  # shellcheck disable=SC2086 # heap_opts is a list of JVM flags
  setsid nohup java $heap_opts -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$here/log4j2.xml" -Dkafka.logs.dir="$node_dir" \
    -cp "$libs_dir/*" kafka.Kafka "$config" </dev/null >>"$outfile" 2>&1 &
  echo $! >"$pidfile"
}

# What start needs before it launches anything: the jars, the venv, Java 17+, and no broker of another shape (the
# single broker and a cluster's nodes) running from this data dir.
check_start() {
  [[ -f $stamp ]] || fail "the broker jars are not installed; run 'make kafka-bin' (or 'make test', which does)"
  [[ -x $python ]] || fail "the project's venv is missing ($python); run 'make venv'"
  local major folder
  major=$(java_major)
  ((${major:-0} >= 17)) || fail "Kafka $(kafka_version) needs Java 17 or newer; 'java' here is version ${major:-unknown}"
  while read -r folder; do
    [[ " ${node_dirs[*]} " == *" $folder "* ]] || fail "a broker of $(shown_dir "$folder") runs (pid" \
      "$(our_pid "$folder")), which KAFKA_BROKERS=$brokers does not include; stop it first (make kafka-stop)"
  done < <(running_folders)
}

start() {
  check_start
  local n pid pids=() missing=()
  for ((n = 1; n <= brokers; n++)); do
    use_node "$n"
    if pid=$(our_pid); then
      check_running_port "$pid"
      pids+=("$pid")
    elif foreign_broker_answers; then
      return
    else
      port_in_use "$controller_port" && fail "the controller port 127.0.0.1:$controller_port is taken;" \
        "use another: KAFKA_CONTROLLER_PORT=9095"
      missing+=("$n")
    fi
  done
  if ((${#missing[@]} == 0)); then
    nodes_ready "$start_wait" "${pids[@]}" ||
      fail_with_log "the project's $(brokers_named) (pid ${pids[*]}) not answering on $bootstrap_address"
    echo "kafka: reusing the project's $(brokers_named) on $bootstrap_address (pid ${pids[*]}, data in $(shown_dir))"
    return
  fi
  ((${#pids[@]} == 0)) || echo "kafka: keeping the nodes that run (pid ${pids[*]})"
  mkdir -p "$data_dir"
  for n in "${missing[@]}"; do
    use_node "$n"
    launch_node
    pids+=("$(<"$pidfile")")
  done
  local status=0
  nodes_ready "$start_wait" "${pids[@]}" || status=$?
  case $status in
    0) ;;
    2) fail_with_log "a broker exited during start-up" ;;
    *) fail_with_log "the $(brokers_named) (pid ${pids[*]}) not answering on $bootstrap_address within ${start_wait}s" ;;
  esac
  echo "kafka: ready; bootstrap address $bootstrap_address"
}

# Fails unless the current node's running broker (pid $1) listens on the port asked for.
check_running_port() {
  local running_port
  running_port=$(sed -n 's|^listeners=PLAINTEXT://127.0.0.1:\([0-9]*\),.*|\1|p' "$config")
  [[ $running_port == "$port" ]] || fail "the broker of $(shown_dir "$node_dir") already runs on" \
    "127.0.0.1:$running_port (pid $1); stop it first (make kafka-stop), or give this one its own KAFKA_DATA_DIR"
}

# True when a broker this project did not start answers on the current node's port, which a single broker then
# reuses; fails when something else holds the port, or when a cluster's node would need it.
foreign_broker_answers() {
  port_in_use "$port" || return 1
  ((brokers == 1)) || fail "127.0.0.1:$port, node $node's port, is taken; stop what listens there, or choose" \
    "other ports (KAFKA_PORT, KAFKA_PORTS)"
  nodes_ready 5 || fail "127.0.0.1:$port is taken by something that does not answer as a Kafka broker;" \
    "stop it, or use another port: make kafka KAFKA_PORT=9094"
  echo "kafka: reusing the broker already answering on $bootstrap_address (not started by this project)"
}

# Renders, formats (once) and launches the current node.
launch_node() {
  mkdir -p "$node_dir"
  render_config
  format_once
  if ((brokers == 1)); then
    echo "kafka: starting Apache Kafka $(kafka_version) (KRaft) on $bootstrap_address, controller on" \
      "127.0.0.1:$controller_port (data in $(shown_dir), log in $(shown_dir)/kafka.log)"
  else
    echo "kafka: starting node $node of $brokers, Apache Kafka $(kafka_version) (KRaft), on 127.0.0.1:$port," \
      "controller on 127.0.0.1:$controller_port (data and kafka.log in $(shown_dir "$node_dir"))"
  fi
  launch
}

# "broker", or "3 brokers" for a cluster.
brokers_named() {
  if ((brokers == 1)); then echo "broker"; else echo "$brokers brokers"; fi
}

# Stops every broker this data dir runs, whatever KAFKA_BROKERS says: the single broker, or all of a cluster's nodes
# at once (one by one, the last ones would always wait for a controller quorum that is already gone).
stop() {
  local folders=() folder pid
  local -A pids=()
  mapfile -t folders < <(running_folders)
  if ((${#folders[@]} == 0)); then
    rm -f "$data_dir/kafka.pid" "$data_dir"/node*/kafka.pid # stale: the processes are gone
    echo "kafka: the project's broker is not running"
    return
  fi
  for folder in "${folders[@]}"; do
    pid=$(our_pid "$folder") || continue
    # SIGTERM is Kafka's controlled shutdown: it flushes and closes every log.
    kill -TERM "$pid"
    pids[$folder]=$pid
  done
  wait_stopped pids
  for folder in "${!pids[@]}"; do
    pid=${pids[$folder]}
    if is_broker_of "$pid" "$folder"; then
      echo "kafka: the broker of $(shown_dir "$folder") (pid $pid) did not stop in time; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" "$folder" 5 || fail "the broker (pid $pid) survived SIGKILL"
    fi
    rm -f "$folder/kafka.pid"
  done
  if [[ ${folders[*]} == "$data_dir" ]]; then
    echo "kafka: stopped"
  else
    echo "kafka: stopped the brokers of $(for folder in "${folders[@]}"; do shown_dir "$folder"; done | paste -sd ' ')"
  fi
}

# Waits up to stop_wait seconds for the brokers of the map named $1 (folder -> pid) to be gone; of several, the
# last one gets 5 s after the others: a cluster's controlled shutdown needs a controller quorum, and when the others
# are gone with theirs it waits for one that cannot come.
wait_stopped() {
  local -n stopping=$1
  local tries=$((stop_wait * 10)) last_tries=50 folder running
  while ((tries-- > 0)); do
    running=0
    for folder in "${!stopping[@]}"; do
      is_broker_of "${stopping[$folder]}" "$folder" && running=$((running + 1))
    done
    ((running > 0)) || return 0
    if ((running == 1 && ${#stopping[@]} > 1)); then
      ((last_tries-- > 0)) || return 0
    fi
    sleep 0.1
  done
}

# Waits up to $3 seconds for the broker $1 of the folder $2 to be gone.
wait_gone() {
  local tries=$(($3 * 10))
  while ((tries-- > 0)); do
    is_broker_of "$1" "$2" || return 0
    sleep 0.1
  done
  return 1
}

status() {
  ((brokers == 1)) || {
    cluster_status
    return
  }
  use_node 1
  local pid
  if pid=$(our_pid); then
    if nodes_ready 3 "$pid"; then
      echo "kafka: running on $bootstrap_address (pid $pid, data in $(shown_dir))"
    else
      echo "kafka: the project's broker (pid $pid) runs but does not answer on $bootstrap_address yet"
      return 1
    fi
  elif port_in_use "$port" && nodes_ready 3; then
    echo "kafka: a broker not started by this project answers on $bootstrap_address"
  else
    echo "kafka: not running (no broker answers on $bootstrap_address)"
    return 3
  fi
}

# One line per node, then whether they all answer. Exit 0: all run and answer; 1: some do; 3: none runs.
cluster_status() {
  local n pid pids=()
  for ((n = 1; n <= brokers; n++)); do
    use_node "$n"
    if pid=$(our_pid); then
      echo "kafka: node $n runs on 127.0.0.1:$port (pid $pid, data in $(shown_dir "$node_dir"))"
      pids+=("$pid")
    else
      echo "kafka: node $n is not running (127.0.0.1:$port)"
    fi
  done
  ((${#pids[@]} > 0)) || return 3
  if ((${#pids[@]} < brokers)); then
    echo "kafka: ${#pids[@]} of $brokers brokers run; 'deploy/kafka.sh start' starts the others"
    return 1
  fi
  if ! nodes_ready 3 "${pids[@]}"; then
    echo "kafka: the $brokers brokers run but do not all answer on $bootstrap_address yet"
    return 1
  fi
  echo "kafka: running, $brokers brokers; bootstrap address $bootstrap_address"
}

bootstrap() {
  echo "$bootstrap_address"
}

fail() {
  echo "kafka: $*" >&2
  exit 1
}

# Fails with the ends of every planned node's kafka.log and kafka.out.
fail_with_log() {
  local n lines=$((brokers == 1 ? 30 : 15))
  for ((n = 1; n <= brokers; n++)); do
    use_node "$n"
    tail -n "$lines" "$logfile" "$outfile" >&2 2>/dev/null || true
  done
  if ((brokers == 1)); then
    fail "$* (above: the ends of kafka.log and kafka.out in $(shown_dir))"
  fi
  fail "$* (above: the ends of each node's kafka.log and kafka.out, in $(shown_dir)/node<n>)"
}

case ${1:-} in
  install | pin | version) "$1" ;;
  start | stop | status | bootstrap)
    plan_nodes
    "$1"
    ;;
  *)
    echo "usage: $0 install|pin|version|start|stop|status|bootstrap" >&2
    exit 2
    ;;
esac
