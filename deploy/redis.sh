#!/usr/bin/env bash
# The project's local redis-server for development (`make redis-bin`, `make redis`, `make redis-stop`).
#
#   deploy/redis.sh install   install the Debian package redis-server unless redis-server is on the PATH
#   deploy/redis.sh start     make sure a redis-server answers on 127.0.0.1:$REDIS_PORT (default 6379)
#   deploy/redis.sh stop      stop the redis-server that `start` launched (found by its pidfile)
#
# Data, AOF, log and pidfile live under <repo>/.data/redis (git-ignored). AOF with fsync every second:
# an acknowledged write survives a crash of redis-server or of syncsvc; a power loss can cost the last second.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${REDIS_PORT:-6379}
data_dir="$repo/.data/redis"
pidfile="$data_dir/redis.pid"
logfile="$data_dir/redis.log"
wait_seconds=10

install() {
  if command -v redis-server >/dev/null; then
    return
  fi
  echo "redis: redis-server not found; installing the Debian package redis-server"
  # Root on the dev and CI machines; sudo elsewhere.
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
}

# What the server on the port says to PING: PONG, LOADING…, NOAUTH…, or nothing. The timeout guards
# against a non-Redis listener that accepts the connection and never answers.
ping_reply() {
  timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# True while the pid is a live redis-server: not gone, not a recycled pid, not a zombie awaiting its reaper.
is_redis() {
  local stat comm
  read -r stat comm < <(ps -o stat=,comm= -p "$1" 2>/dev/null) || return 1
  [[ $comm == redis-server && $stat != Z* ]]
}

# The pid from our pidfile, if that redis-server still runs.
our_pid() {
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(<"$pidfile")
  is_redis "$pid" && echo "$pid"
}

# Waits until the server answers PONG: a fresh or restarted server replays its AOF first (LOADING).
wait_for_pong() {
  local tries=$((wait_seconds * 10))
  while ((tries-- > 0)); do
    [[ $(ping_reply) == PONG ]] && return 0
    sleep 0.1
  done
  return 1
}

start() {
  command -v redis-server >/dev/null || {
    echo "redis: redis-server is not installed; run 'make redis-bin'" >&2
    exit 1
  }
  local reply
  reply=$(ping_reply)
  if [[ $reply == PONG || $reply == LOADING* ]]; then
    wait_for_pong || fail "the redis-server on 127.0.0.1:$port did not finish loading within ${wait_seconds}s"
    if our_pid >/dev/null; then
      echo "redis: reusing the project's redis-server on 127.0.0.1:$port (data in .data/redis)"
    else
      echo "redis: reusing the redis-server already answering on 127.0.0.1:$port (not started by this project)"
    fi
    return
  fi
  if port_in_use; then
    fail "127.0.0.1:$port is taken by something that does not answer PING as Redis${reply:+ (it said: $reply)};" \
      "stop it, or use another port: make dev REDIS_PORT=6380"
  fi

  mkdir -p "$data_dir"
  echo "redis: starting redis-server on 127.0.0.1:$port (AOF on, data in .data/redis, log in .data/redis/redis.log)"
  redis-server --bind 127.0.0.1 --port "$port" \
    --appendonly yes --appendfsync everysec \
    --dir "$data_dir" --daemonize yes --pidfile "$pidfile" --logfile "$logfile"
  wait_for_pong || {
    tail -n 20 "$logfile" >&2 || true
    fail "redis-server did not answer on 127.0.0.1:$port within ${wait_seconds}s (log above)"
  }
  echo "redis: ready"
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$pidfile" # stale: the process is gone
    echo "redis: the project's redis-server is not running"
    return
  fi
  # SIGTERM is Redis's graceful shutdown: it fsyncs the AOF and removes the pidfile.
  kill -TERM "$pid"
  local tries=$((wait_seconds * 10))
  while ((tries-- > 0)); do
    is_redis "$pid" || {
      echo "redis: stopped"
      return
    }
    sleep 0.1
  done
  fail "redis-server (pid $pid) did not stop within ${wait_seconds}s"
}

fail() {
  echo "redis: $*" >&2
  exit 1
}

case ${1:-} in
  install | start | stop) "$1" ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
