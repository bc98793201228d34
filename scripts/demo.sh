#!/usr/bin/env bash
# make demo: the service and the agent on this machine, the agent writing to data/randomNumber.txt.
# Ctrl-C stops both. SCHEDULE (default every minute) and PORT (default 8080, or any free port when
# 8080 is taken) come from the environment; DATA_DIR moves the output folder (tests use it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SCHEDULE=${SCHEDULE:-'* * * * *'}
# Absolute: the agent takes OUTPUT_FILE only as a plain absolute path.
DATA_DIR=$(realpath -m "${DATA_DIR:-data}")
OUTPUT_FILE=$DATA_DIR/randomNumber.txt
SERVICE_LOG=$DATA_DIR/service.log

[[ -f dist/random-number.mjs && -f dist/ec2-agent.mjs ]] || npm run --silent build
mkdir -p "$DATA_DIR"

service_pid=
agent_pid=
# shellcheck disable=SC2317 # called from the traps below
stop() {
  trap - INT TERM EXIT
  # Nothing started (the service refused its settings): nothing to stop, and nothing to claim.
  [[ -n $service_pid$agent_pid ]] || return 0
  # Output may have nowhere to go by now (the terminal closed, the reader of a pipe gone): a failed
  # echo must not end this function (set -e, SIGPIPE) before the two are stopped.
  trap '' PIPE
  printf '\ndemo: stopping the agent and the service\n' || true
  # The agent first, so it does not log the service going away; each gets SIGTERM and is waited for.
  [[ -z $agent_pid ]] || kill -TERM "$agent_pid" 2>/dev/null || true
  [[ -z $agent_pid ]] || wait "$agent_pid" 2>/dev/null || true
  [[ -z $service_pid ]] || kill -TERM "$service_pid" 2>/dev/null || true
  [[ -z $service_pid ]] || wait "$service_pid" 2>/dev/null || true
  echo "demo: stopped; the numbers stay in $OUTPUT_FILE" || true
}
trap 'stop; exit 0' INT TERM HUP
trap stop EXIT
# Job control puts each child in a process group of its own, so Ctrl-C reaches this script only and
# stop() shuts the two down in order (agent, then service) instead of both racing the signal.
set -m

# Starts the service on port $1 (0: the OS picks); sets service_pid and port, or fails when the
# process exits before it says it is listening (port taken, say).
start_service() {
  : >"$SERVICE_LOG"
  HOST=127.0.0.1 PORT=$1 node dist/random-number.mjs >>"$SERVICE_LOG" 2>&1 &
  service_pid=$!
  for _ in $(seq 100); do
    port=$(grep -m1 '"msg":"listening"' "$SERVICE_LOG" | sed -E 's/.*"port":([0-9]+).*/\1/' || true)
    [[ -z $port ]] || return 0
    kill -0 "$service_pid" 2>/dev/null || {
      wait "$service_pid" 2>/dev/null || true
      service_pid=
      return 1
    }
    sleep 0.1
  done
  return 1
}

# The service's own reason (the last line it wrote) on the terminal, not only in its log.
service_failed() {
  tail -n 1 "$SERVICE_LOG" >&2
  die "the service could not start (its reason above; its log: $SERVICE_LOG)"
}
if [[ -n ${PORT:-} ]]; then
  start_service "$PORT" || service_failed
elif ! start_service 8080; then
  grep -q 'is in use' "$SERVICE_LOG" || service_failed
  echo "demo: port 8080 is taken; letting the OS pick a free one"
  start_service 0 || service_failed
fi
url=http://127.0.0.1:$port/
echo "demo: service  $url (pid $service_pid, log $SERVICE_LOG)"

export SERVICE_URL=$url SCHEDULE OUTPUT_FILE
# The agent's own check first: a bad setting is its one line, before anything says it polls.
node dist/ec2-agent.mjs --check >/dev/null || die "the agent refused its settings (its reason above)"
node dist/ec2-agent.mjs &
agent_pid=$!
echo "demo: agent    polling on '$SCHEDULE' (pid $agent_pid); numbers go to $OUTPUT_FILE"
echo "demo: watch them with:  tail -f $OUTPUT_FILE"
echo "demo: Ctrl-C stops both"

# Either child ending on its own ends the demo (and the EXIT trap stops the other).
set +e
wait -n "$service_pid" "$agent_pid"
status=$?
# A signal for this script interrupts `wait` with a status above 128 and its trap then runs.
die "a process exited on its own (status $status); see $SERVICE_LOG and the lines above"
