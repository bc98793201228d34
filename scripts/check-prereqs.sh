#!/usr/bin/env bash
# Checks the tools `make test` needs beyond npm packages. Installs what Debian packages can give when
# run as root; otherwise says exactly what to install and fails. Never skips a test silently.
set -euo pipefail

missing=0
lack() { # lack <what> <how to install>
  echo "missing prerequisite: $1 — $2" >&2
  missing=1
}
need() { command -v "$1" >/dev/null 2>&1 || lack "$@"; } # need <command> <how to install>

# Debian packages as root, none of their services started: a policy-rc.d answering 101 is added for the
# install and removed after, unless one is already there (container images ship one), which is left as
# it is. Whether the install worked is judged by the checks below, which fail loudly.
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 0
  echo "installing $* (Debian packages, not started)..." >&2
  local added=''
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && added=1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >&2 || true
  [ -z "$added" ] || rm -f /usr/sbin/policy-rc.d
}
# The TLS tests: openssl makes and checks certificates, nginx terminates TLS in front of the service.
packages=()
command -v shellcheck >/dev/null 2>&1 || packages+=(shellcheck)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
[ -x /usr/sbin/nginx ] || packages+=(nginx)
[ ${#packages[@]} = 0 ] || apt_install "${packages[@]}"
need openssl "install it: apt-get install openssl (or brew install openssl)"
[ -x /usr/sbin/nginx ] || lack /usr/sbin/nginx "install it: apt-get install nginx (the TLS tests run it on loopback)"
need unshare "install util-linux (the TLS test runs the agent with a private /etc/hosts; needs root)"
need setpriv "install util-linux (the tests start moto, the service and the agent under setpriv --pdeathsig, so none outlives a test file killed on its timeout)"
need kubectl "install kubectl (it carries kustomize): https://kubernetes.io/docs/tasks/tools/"
need shellcheck "install it: apt-get install shellcheck (or brew install shellcheck)"
# The IAM test runs the README's `aws ssm send-command` path with the real AWS CLI (v1 or v2).
need aws "install the AWS CLI: pip install awscli, or apt-get install awscli, or https://aws.amazon.com/cli/"
command -v moto_server >/dev/null 2>&1 || python3 -c 'import moto.server' >/dev/null 2>&1 ||
  lack "moto_server (local AWS emulator)" "install it: pip install 'moto[server]'"
exit "$missing"
