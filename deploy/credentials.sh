#!/usr/bin/env bash
# Developer (admin) credentials for local development (`make credentials`, `make dev`).
#
#   deploy/credentials.sh ensure   keep SYNCSVC_DEVELOPER_CREDENTIALS if set; otherwise generate a pair once
#                                  into .data/developer-credentials (mode 600) and reuse it afterwards
#   deploy/credentials.sh value    print the ACCESS_KEY_ID:SECRET list that `make dev` exports
#
# `ensure` never prints the secret; the `make dev` banner is the one place that does.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
file="$repo/.data/developer-credentials"

# AWS-shaped: an access key id of AKID + 16 uppercase letters/digits, a 40-char urlsafe secret
# (30 random bytes). Neither can contain ':' or ',', the separators of SYNCSVC_DEVELOPER_CREDENTIALS.
generate() {
  python3 -c '
import secrets, string
alphabet = string.ascii_uppercase + string.digits
print("AKID" + "".join(secrets.choice(alphabet) for _ in range(16)) + ":" + secrets.token_urlsafe(30))'
}

read_file() {
  local value
  value=$(<"$file")
  [[ $value =~ ^[A-Za-z0-9]+:[^,:[:space:]]+$ ]] || {
    echo "credentials: $file is malformed; delete it to generate a new pair" >&2
    exit 1
  }
  echo "$value"
}

ensure() {
  if [[ -n ${SYNCSVC_DEVELOPER_CREDENTIALS:-} ]]; then
    echo "credentials: using SYNCSVC_DEVELOPER_CREDENTIALS from the environment"
    return
  fi
  if [[ -f $file ]]; then
    read_file >/dev/null
    chmod 600 "$file"
    echo "credentials: reusing .data/developer-credentials"
    return
  fi
  mkdir -p "$(dirname "$file")"
  # mktemp creates the file 0600; the rename makes a half-written file impossible.
  local tmp
  tmp=$(mktemp "$file.XXXXXX")
  generate >"$tmp" || {
    rm -f "$tmp"
    exit 1
  }
  mv "$tmp" "$file"
  echo "credentials: generated a developer key pair into .data/developer-credentials"
}

value() {
  if [[ -n ${SYNCSVC_DEVELOPER_CREDENTIALS:-} ]]; then
    echo "$SYNCSVC_DEVELOPER_CREDENTIALS"
  elif [[ -f $file ]]; then
    read_file
  else
    echo "credentials: none yet; run 'make credentials'" >&2
    exit 1
  fi
}

case ${1:-} in
  ensure | value) "$1" ;;
  *)
    echo "usage: $0 ensure|value" >&2
    exit 2
    ;;
esac
