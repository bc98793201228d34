#!/usr/bin/env bash
# Installs or upgrades the random-number agent on Amazon Linux 2023 (run as root, e.g. by SSM Run
# Command). Idempotent: running it again with the same inputs changes nothing but restarts the agent.
#
#   install.sh --bundle FILE [--sha256 HEX] --service-url URL [--SETTING VALUE ...]
#              [--extra-ca-certs PEM|none] [--unit FILE] [--prefix DIR]
#
# --SETTING: any setting of the agent by its flag (the table in ec2-agent/config.ts: --schedule,
# --output-file, --api-token-parameter, --aws-region, --request-timeout-ms, --log-level, ...), or in the
# environment by its variable (SCHEDULE, ...). The agent bundle checks them itself (`--check`) before
# anything is changed, and what it would run with is written to /etc/random-number-agent/agent.env.
# BUNDLE, BUNDLE_SHA256, EXTRA_CA_CERTS, UNIT and PREFIX may come from the environment too (flags win).
# --unit is the systemd unit to install (default: random-number-agent.service beside this script, as
# the delivery stages it); install.sh rewrites its ExecStart and BindPaths lines for this instance.
#
# The agent runs as the system user random-number-agent (created here: no login shell, no home), and
# the output file is the one thing it can write: a missing folder is created root-owned 0755, a missing
# file empty 0644; an existing file (an upgrade, or root's from an earlier version) keeps every line
# and is given to that user.
# --extra-ca-certs: a PEM file with the CA of a service behind a private certificate; checked by the
# agent, copied to /etc/random-number-agent/extra-ca.pem and given to it as SERVICE_CA_FILE (trusted,
# in addition to the public CAs Node.js bundles, for the service only: not for the agent's AWS calls).
# Without the flag a CA installed earlier is kept; `--extra-ca-certs none` removes it.
# NODE_BIN overrides the Node.js 22 binary written into the unit.
#
# --prefix DIR lays every file down under DIR and touches nothing else: no dnf, no useradd (the output
# file keeps the owner install.sh runs as), no systemctl, no instance metadata. Tests use it; on an
# instance leave it out.
#
# There is deliberately no --api-token: a token on a command line ends up in SSM's command history.
# Put it in an SSM SecureString and pass its name with --api-token-parameter.
set -euo pipefail

NAME=random-number-agent

die() {
  echo "install.sh: error: $*" >&2
  exit 1
}
say() { echo "install.sh: $*"; }

UNIT=${UNIT:-$(dirname "${BASH_SOURCE[0]}")/$NAME.service}
# The others are empty unless the environment sets them.
for name in BUNDLE BUNDLE_SHA256 EXTRA_CA_CERTS PREFIX NODE_BIN; do
  printf -v "$name" '%s' "${!name:-}"
done
given=() # the agent settings given as flags, by variable name, for the agent's check

while (($# > 0)); do
  flag=$1
  case $flag in
  -h | --help)
    # The usage: lines 5 to 6 of this file.
    sed -n '5,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 0
    ;;
  --*=*)
    value=${flag#*=}
    flag=${flag%%=*}
    ;;
  --*)
    if (($# < 2)) || [[ $2 == --* ]]; then die "$flag needs a value"; fi
    value=$2
    shift
    ;;
  *) die "unexpected argument: $flag (see --help)" ;;
  esac
  shift
  [[ $flag =~ ^--[a-z][a-z0-9-]*$ ]] || die "unknown flag: $flag (see --help)"
  # The variable of the same name: --service-url sets SERVICE_URL.
  var=${flag#--}
  var=${var//-/_}
  var=${var^^}
  case $flag in
  --sha256) BUNDLE_SHA256=$value ;;
  --bundle | --extra-ca-certs | --unit | --prefix) printf -v "$var" '%s' "$value" ;;
  --service-ca-file) die "give the service's CA with --extra-ca-certs PEM (installed where SERVICE_CA_FILE points)" ;;
  *)
    # An agent setting: the agent's check below refuses a name it does not know.
    export "$var=$value"
    given+=("$var")
    ;;
  esac
done

# --- check everything before changing anything -------------------------------------------------
[[ -n $BUNDLE ]] || die "--bundle FILE is required (the agent bundle, dist/ec2-agent.mjs)"
[[ -f $BUNDLE && -r $BUNDLE ]] || die "--bundle $BUNDLE: no such readable file"
[[ -f $UNIT && -r $UNIT ]] || die "--unit $UNIT: no such readable file (the systemd unit, ec2-agent/$NAME.service)"
# The agent checks the CA file below as it will read it; only install.sh says where it lives.
unset SERVICE_CA_FILE
[[ -z $EXTRA_CA_CERTS || $EXTRA_CA_CERTS == none ]] || export SERVICE_CA_FILE=$EXTRA_CA_CERTS
if [[ -n $BUNDLE_SHA256 ]]; then
  [[ $BUNDLE_SHA256 =~ ^[0-9a-fA-F]{64}$ ]] || die "--sha256 must be 64 hex digits (got $BUNDLE_SHA256)"
  actual=$(sha256sum "$BUNDLE" | cut -d' ' -f1)
  [[ $actual == "${BUNDLE_SHA256,,}" ]] ||
    die "checksum mismatch for $BUNDLE: expected $BUNDLE_SHA256, got $actual; nothing was changed"
  say "bundle checksum verified ($actual)"
fi
if [[ -n $PREFIX ]]; then
  [[ $PREFIX == /* ]] || PREFIX=$(pwd)/$PREFIX
  PREFIX=${PREFIX%/}
else
  ((EUID == 0)) || die "run as root (or give --prefix DIR to install under a folder)"
fi

# --- Node.js 22 --------------------------------------------------------------------------------
# nodejs22 on Amazon Linux 2023 installs /usr/bin/node-22; /usr/bin/node is an alternatives link
# that may point at another major version, so the unit names node-22.
if [[ -z $NODE_BIN && -z $PREFIX && ! -x /usr/bin/node-22 ]]; then
  say "installing Node.js 22 (dnf install -y nodejs22)"
  dnf install -y -q nodejs22 >&2 || die "dnf install nodejs22 failed"
fi
NODE_BIN=${NODE_BIN:-/usr/bin/node-22}
[[ $NODE_BIN == /* ]] || die "NODE_BIN must be an absolute path (got $NODE_BIN)"

# --- AWS region, needed only to read the token parameter ----------------------------------------
if [[ -n ${API_TOKEN_PARAMETER:-} && -z ${AWS_REGION:-} ]]; then
  if [[ -z $PREFIX ]]; then
    # Written down now (IMDSv2), not left to the SDK's own metadata lookup at every start: a metadata
    # hiccup at boot would then read as a missing region, which the agent treats as configuration (78).
    imds_token=$(curl -fsS -m 2 -X PUT http://169.254.169.254/latest/api/token \
      -H 'X-aws-ec2-metadata-token-ttl-seconds: 60') || die "--aws-region is needed (instance metadata did not answer)"
    AWS_REGION=$(curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $imds_token" \
      http://169.254.169.254/latest/meta-data/placement/region) || die "--aws-region is needed (instance metadata did not answer)"
    export AWS_REGION
  else
    say "warning: --api-token-parameter without --aws-region; the agent will need AWS_REGION"
  fi
fi

# --- the agent checks its settings itself -------------------------------------------------------
# Its rules and its words (ec2-agent/config.ts): a bad setting stops the install here, before anything
# is changed, with the line the agent would log (exit 78). It prints what it would run with.
check_node=$NODE_BIN
[[ -x $check_node ]] || check_node=$(command -v node) || die "no node to run the agent's check with"
resolved=$("$check_node" "$BUNDLE" --check "${given[@]}") || {
  status=$?
  echo "install.sh: the agent refused its settings (its reason above); nothing was changed" >&2
  exit "$status"
}
OUTPUT_FILE=$(sed -n 's/^OUTPUT_FILE=//p' <<<"$resolved")
# Given to the agent below: a symlink would give away its target (chown follows it, BindPaths too).
[[ ! -L $PREFIX$OUTPUT_FILE && (-f $PREFIX$OUTPUT_FILE || ! -e $PREFIX$OUTPUT_FILE) ]] ||
  die "--output-file $OUTPUT_FILE exists and is not a regular file; give the path of a file"

# --- lay the files down ------------------------------------------------------------------------
opt_dir=$PREFIX/opt/$NAME
etc_dir=$PREFIX/etc/$NAME
unit_dir=$PREFIX/etc/systemd/system
# 0755: the agent, not root, reads the extra CA here; agent.env, read by systemd itself, stays 0600.
install -d -m 0755 "$opt_dir" "$unit_dir" "$etc_dir"

(umask 022 && mkdir -p "$(dirname "$PREFIX$OUTPUT_FILE")")
[[ -f $PREFIX$OUTPUT_FILE ]] || install -m 0644 /dev/null "$PREFIX$OUTPUT_FILE"
if [[ -z $PREFIX ]]; then
  id -u "$NAME" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$NAME"
  chown -h "$NAME:" "$OUTPUT_FILE"
fi

# Writes stdin to $1 with mode $2 through a temporary file in the same folder and a rename, so a
# reader (systemd, a running agent restarting) never sees half a file.
put() {
  local target=$1 mode=$2 tmp
  tmp=$(mktemp "$(dirname "$target")/.$(basename "$target").XXXXXX")
  if ! { cat >"$tmp" && chmod "$mode" "$tmp" && mv -f "$tmp" "$target"; }; then
    rm -f "$tmp"
    die "cannot write $target"
  fi
}

put "$opt_dir/ec2-agent.mjs" 0644 <"$BUNDLE"
ca_file=/etc/$NAME/extra-ca.pem
# An upgrade without the flag must not silently drop the trust the agent needs to reach the service.
if [[ $EXTRA_CA_CERTS == none ]]; then
  rm -f "$PREFIX$ca_file"
elif [[ -n $EXTRA_CA_CERTS ]]; then
  put "$PREFIX$ca_file" 0644 <"$EXTRA_CA_CERTS"
elif [[ -f $PREFIX$ca_file ]]; then
  say "keeping the CA installed earlier ($ca_file); --extra-ca-certs none removes it"
fi

# The agent this replaces read a token that this one will not have: say so (agent-command sends only
# what it is given; provision-ec2 passes the parameter it keeps).
if grep -qs '^API_TOKEN_PARAMETER=' "$etc_dir/agent.env" && ! grep -q '^API_TOKEN_PARAMETER=' <<<"$resolved"; then
  say "warning: the agent installed here read its API token from SSM (API_TOKEN_PARAMETER) and this install gives it none: a service that requires one will answer 401; pass --api-token-parameter to keep it"
fi
# systemd EnvironmentFile: double quotes keep spaces and *; backslash and double quote are escaped.
quote() {
  local v=${1//\\/\\\\}
  printf '"%s"' "${v//\"/\\\"}"
}
{
  echo "# Written by install.sh; rerun it to change these (edits here are overwritten)."
  # The settings as the agent's check resolved them: defaults included, API_TOKEN never.
  while IFS='=' read -r name value; do
    [[ $name == SERVICE_CA_FILE ]] || echo "$name=$(quote "$value")"
  done <<<"$resolved"
  [[ ! -f $PREFIX$ca_file ]] || echo "SERVICE_CA_FILE=$(quote "$ca_file")"
} | put "$etc_dir/agent.env" 0600

# The unit as shipped, with this instance's Node.js binary and output file. sed replacement strings
# escape & | and backslash.
sed_escape() { printf '%s' "$1" | sed 's/[&|\\]/\\&/g'; }
sed -e "s|^ExecStart=.*|ExecStart=$(sed_escape "$NODE_BIN") /opt/$NAME/ec2-agent.mjs|" \
  -e "s|^BindPaths=.*|BindPaths=$(sed_escape "$OUTPUT_FILE")|" "$UNIT" |
  put "$unit_dir/$NAME.service" 0644
say "installed $opt_dir/ec2-agent.mjs, $etc_dir/agent.env, $unit_dir/$NAME.service (node: $NODE_BIN, output: $OUTPUT_FILE)"

if [[ -n $PREFIX ]]; then
  echo "$NAME: installed under $PREFIX (not started: under --prefix, systemd is not touched)"
  exit 0
fi

# --- start or restart ---------------------------------------------------------------------------
systemctl daemon-reload
systemctl enable --quiet "$NAME"
# restart starts a stopped unit too; for a running one it is the upgrade: new bundle and environment.
systemctl restart "$NAME"
# "Running" is not enough: a bad configuration exits within a second (status 78, which the unit does
# not restart); an unreadable token parameter exits 1 once the read gives up, at most 15 s after it
# began (ec2-agent/token.ts), and systemd starts it again 5 s later (RestartSec=) as a new invocation.
# The agent logs `started` once past both: wait up to 20 s for that line from this very start. Above
# LOG_LEVEL=info there is no such line; then this same invocation still active after the 20 s is past
# both checks (the 5 s over the read's bound cover Node.js loading the bundle, about 1 s).
invocation=$(systemctl show -p InvocationID --value "$NAME")
journal() { journalctl "_SYSTEMD_INVOCATION_ID=$invocation" -o cat --no-pager 2>/dev/null || true; }
for _ in $(seq 40); do
  # grep without -q reads to the end: under pipefail, -q's early exit would fail journalctl (SIGPIPE).
  if journal | grep '"msg":"started"' >/dev/null; then
    echo "$NAME: active"
    exit 0
  fi
  systemctl is-active --quiet "$NAME" || break
  sleep 0.5
done
if systemctl is-active --quiet "$NAME" && [[ $(systemctl show -p InvocationID --value "$NAME") == "$invocation" ]]; then
  echo "$NAME: active (no started line, which LOG_LEVEL above info hides; the same start still running after 20 s: past its configuration and token checks)"
  exit 0
fi
# The agent's own words: its error line (stderr) or its last log lines.
journal | tail -n 15 >&2
result=$(systemctl show -p Result --value "$NAME")
status=$(systemctl show -p ExecMainStatus --value "$NAME")
if [[ $status == 78 ]]; then
  echo "$NAME: NOT active: the agent rejected its configuration (exit 78, not restarted); fix the value above and run install.sh again" >&2
else
  echo "$NAME: NOT active (result $result, exit status $status); systemd retries every 5 s: journalctl -u $NAME" >&2
fi
exit 1
