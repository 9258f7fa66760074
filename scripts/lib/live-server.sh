# Sourced by scripts that test a live server (scripts/fuzz, scripts/client): `bountyline dev`
# (API and workers) on a fresh database and NATS prefix, on a free loopback port, with an admin
# user. Everything it starts is stopped by pid, and its database and JetStream stream removed,
# when the calling script exits.
#
#   live_build                    builds bountyline and loadgen; sets BIN and LOADGEN
#   live_start NAME LOG [VAR=...] starts the server (extra environment after the log file);
#                                 sets URL, PORT, LIVE_ENV (the server's environment)
#   live_admin EMAIL              creates an admin; sets LIVE_PASSWORD
#
# Needs ROOT, DATABASE_URL, NATS_URL (from .data/env) and `say`/`die` from the caller. The
# caller's own EXIT trap, if any, must call live_stop.

live_build() {
  say "building"
  cargo build -q -p bountyline -p bountyline-bench
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/bountyline"
  LOADGEN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/loadgen"
}

LIVE_PID=""
LIVE_DB=""
LIVE_PREFIX=""
LIVE_LOG=""

live_stop() {
  if [ -n "$LIVE_PID" ] && kill -0 "$LIVE_PID" 2>/dev/null; then
    kill -TERM "$LIVE_PID"
    for _ in $(seq 1 100); do kill -0 "$LIVE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$LIVE_PID" 2>/dev/null
    wait "$LIVE_PID" 2>/dev/null
  fi
  LIVE_PID=""
  if [ -n "$LIVE_DB" ]; then
    NATS_URL="$NATS_URL" "$LOADGEN" drop-stream --prefix "$LIVE_PREFIX" >/dev/null 2>&1
    psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $LIVE_DB WITH (FORCE)" >/dev/null 2>&1
  fi
  LIVE_DB=""
}

live_start() {
  local name="$1" log="$2"
  shift 2
  LIVE_LOG="$log"
  LIVE_DB="bl_${name}_$(date -u +%Y%m%d%H%M%S)_$$"
  LIVE_PREFIX="${name}$(date +%s)$$"
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  URL="http://127.0.0.1:$PORT"
  # Limits off: every request comes from one address, far faster than a person.
  LIVE_ENV=(
    DATABASE_URL="${DATABASE_URL%/*}/$LIVE_DB"
    NATS_URL="$NATS_URL"
    BOUNTYLINE_NATS_PREFIX="$LIVE_PREFIX"
    BOUNTYLINE_AUTH__JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n=')"
    BOUNTYLINE_PAYMENTS__WEBHOOK_SECRET="$(head -c 24 /dev/urandom | base64 | tr -d '\n=')"
    BOUNTYLINE_PRIVACY__KEY="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
    BOUNTYLINE_LIMITS__AUTH_PER_MINUTE=0
    BOUNTYLINE_LIMITS__COMMANDS_PER_MINUTE=0
    BOUNTYLINE_LIMITS__LOGIN_FAILURES_PER_MINUTE=0
    BOUNTYLINE_HTTP__PORT="$PORT"
    RUST_LOG=warn
    NO_COLOR=1
    "$@"
  )
  psql "$DATABASE_URL" -qc "CREATE DATABASE $LIVE_DB" >/dev/null
  env "${LIVE_ENV[@]}" "$BIN" migrate >"$LIVE_LOG" 2>&1
  env "${LIVE_ENV[@]}" "$BIN" dev >>"$LIVE_LOG" 2>&1 &
  LIVE_PID=$!
  "$LOADGEN" wait-ready --url "$URL" --timeout-seconds 60 >/dev/null \
    || { tail -n 30 "$LIVE_LOG" >&2; die "the server did not become ready"; }
}

live_admin() {
  local email="$1"
  LIVE_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '\n=/+')"
  env "${LIVE_ENV[@]}" BOUNTYLINE_ADMIN_PASSWORD="$LIVE_PASSWORD" "$BIN" admin create \
    --email "$email" >>"$LIVE_LOG" 2>&1
}
