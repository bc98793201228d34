#!/usr/bin/env bash
# `make expose-minikube DOMAIN=<name> [EXPOSE_PORT=8443]`: makes the home minikube's ingress reachable from the
# internet the way the original design did, as far as a script can: it forwards Kourier's HTTPS port to
# PORT on all of this machine's interfaces (in the foreground; Ctrl-C stops it) and prints the steps only
# a person can do (router, dynamic DNS) and the agent's command.
#
#   expose-minikube.sh           check, print the steps, forward until Ctrl-C
#   expose-minikube.sh steps     print the steps only (no cluster needed)
#
# Environment: DOMAIN (required: the DomainMapping's name and the certificate's), EXPOSE_PORT (8443: any
# free port >= 1024, no root needed), CERTS_DIR (certs/), MINIKUBE_PROFILE (minikube).
#
# Why public port 443: Kourier routes a request by its Host header, and it lists every host both bare and
# as `host:*` (net-kourier pkg/generator/ingress_translator.go, domainsForHost), so another port would
# still be routed; but on 443 the URL carries no port at all, the Host header is exactly the
# DomainMapping's name for any ingress, and the certificate is picked by SNI (the name, never a port).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Not PORT: `make demo` and the service read PORT, and a shell may have it set for them.
readonly PORT="${EXPOSE_PORT:-8443}"
readonly NAMESPACE=kourier-system
readonly SERVICE=kourier

# This machine's address on the home network, for the router's forwarding rule; a placeholder when
# it cannot be told (several interfaces, macOS without en0, ...).
lan_address() {
  local ip
  ip="$({ hostname -I || ipconfig getifaddr en0; } 2>/dev/null | awk '{print $1}')" || ip=""
  echo "${ip:-"<this machine's LAN address>"}"
}

print_steps() {
  local ca
  # Quoted as a shell reads it, so the commands below paste whole when CERTS_DIR has spaces.
  printf -v ca %q "${CERTS#"$ROOT"/}/ca.crt"
  cat <<EOF
Without \`steps\`, this script keeps Kourier's HTTPS port (svc/$SERVICE 443 in $NAMESPACE) forwarded to 0.0.0.0:$PORT here.

By hand, once (the script cannot do these):
  1. Router: forward TCP port 443 from the internet to $(lan_address):$PORT.
     443 outside, so the URL has no port and the Host header is exactly $DOMAIN (the DomainMapping).
  2. Dynamic DNS: point $DOMAIN at your home's public IP address and keep it updated when the
     provider changes it (DuckDNS's updater, or your router's DDNS client). Your public address:
     curl -s https://checkip.amazonaws.com
  3. Check from outside your network (many routers cannot reach their own public address from inside):
     curl --cacert $ca -H 'Accept: application/json' -H "Authorization: Bearer \$API_TOKEN" https://$DOMAIN/
  4. The agent on EC2, trusting your CA:
     npm run provision-ec2 -- --service-url https://$DOMAIN/ --ca-cert $ca
     npm run ec2-results          # numbers appear after the first minute

Fragile, and what to use for longer:
  - kubectl port-forward holds one ingress pod through the API server: it ends when that pod restarts,
    minikube stops or this machine sleeps. This script starts it again after 3 s, but polls in between
    fail (the agent logs them and tries again next minute).
  - The home address changes (dynamic DNS follows with a delay); a provider using CGNAT gives you no
    public address at all, and then no router rule can help.
  - For longer: \`minikube tunnel\` gives svc/$SERVICE a stable address on this machine that survives pod
    restarts (forward the router to it, e.g. through socat or a DNAT rule), or run the service on a cloud
    cluster (README "Connect the agent to your cluster").
EOF
}

check_cluster() {
  local context https mapping
  have kubectl || die "kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)"
  context="$(kubectl config current-context 2>/dev/null)" ||
    die "kubectl has no current context: run make setup-minikube"
  [[ "$context" == "$PROFILE" ]] ||
    die "kubectl's current context is '$context', not minikube profile '$PROFILE': run kubectl config use-context $PROFILE"
  https="$(kubectl get service "$SERVICE" -n "$NAMESPACE" --request-timeout=15s \
    -o jsonpath='{.spec.ports[?(@.name=="https")].port}' 2>/dev/null)" ||
    die "cannot read svc/$SERVICE in $NAMESPACE: is minikube running with Kourier? (make setup-minikube)"
  [[ "$https" == 443 ]] || die "svc/$SERVICE in $NAMESPACE has no https port 443 (found '${https}'): reinstall Kourier with make setup-minikube"
  # Warnings only: the forward is useful for checking even before the mapping is ready. Their commands
  # carry CERTS_DIR when it was given, or they would look for the certificates in the wrong place.
  local env="${CERTS_DIR:+CERTS_DIR=$(printf %q "$CERTS_DIR") }"
  mapping="$(kubectl get domainmappings.serving.knative.dev -A \
    -o jsonpath="{range .items[?(@.metadata.name==\"$DOMAIN\")]}{.metadata.namespace}{\"/\"}{.spec.tls.secretName}{end}" 2>/dev/null || true)"
  if [[ -z "$mapping" ]]; then
    say "warning: no DomainMapping $DOMAIN yet: run ${env}DOMAIN=$DOMAIN TLS=own make deploy-knative"
  elif [[ -z "${mapping#*/}" ]]; then
    say "warning: DomainMapping $DOMAIN has no spec.tls.secretName: run ${env}DOMAIN=$DOMAIN TLS=own make deploy-knative"
  fi
  [[ -r "$CERTS/ca.crt" ]] || say "warning: no $CERTS/ca.crt: run ${env}make tls-cert DOMAIN=$DOMAIN (the agent needs that CA)"
}

# Runs the forward in the foreground until Ctrl-C, starting it again when it ends by itself.
forward() {
  local child="" stop=""
  trap 'stop=yes; [[ -z "$child" ]] || kill "$child" 2>/dev/null || true' INT TERM
  while [[ -z "$stop" ]]; do
    say "kubectl port-forward --address 0.0.0.0 -n $NAMESPACE svc/$SERVICE $PORT:443   (Ctrl-C stops)"
    in_background kubectl port-forward --address 0.0.0.0 -n "$NAMESPACE" "svc/$SERVICE" "$PORT:443"
    [[ -z "$stop" ]] || break
    say "the port-forward ended (ingress pod restarted, minikube stopped or the API connection dropped); starting it again in 3 s"
    in_background sleep 3
  done
  say "stopped; $DOMAIN is no longer reachable from outside"
}

# Runs "$@" in the background of this script and waits for it, so that a signal reaches forward's trap
# at once (which kills it), not after it exits.
in_background() {
  "$@" &
  child=$!
  wait "$child" || true
  # A signal interrupts `wait` before the child is gone: wait for it for real.
  wait "$child" 2>/dev/null || true
  child=""
}

[[ "${1:-}" =~ ^(steps)?$ ]] || die "usage: $0 [steps]  (DOMAIN=<name> EXPOSE_PORT=<port> in the environment)"
[[ -n "${DOMAIN:-}" ]] ||
  die "DOMAIN is required: the public name the agent calls, e.g. DOMAIN=myhome.duckdns.org make expose-minikube"
[[ "$DOMAIN" =~ $DOMAIN_RE ]] || die "DOMAIN '$DOMAIN' is not a lower-case DNS name like myhome.duckdns.org (labels of at most 63 characters)"
if ! [[ "$PORT" =~ ^[1-9][0-9]{3,4}$ ]] || ((PORT < 1024 || PORT > 65535)); then
  die "EXPOSE_PORT must be a whole number from 1024 to 65535 (a port a normal user may open; got '$PORT')"
fi
# A port something else listens on fails every port-forward at once, which the loop would retry every
# 3 s forever: refuse it first. A connection on loopback reaches a listener on 0.0.0.0, :: or 127.0.0.1,
# each of which makes kubectl's bind of 0.0.0.0:PORT fail (on Linux).
[[ "${1:-}" == steps ]] || ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null ||
  die "EXPOSE_PORT $PORT is already in use on this machine (another port-forward or server listens on it): stop that, or choose a free port: DOMAIN=$DOMAIN EXPOSE_PORT=<port> make expose-minikube"
[[ "${1:-}" == steps ]] || check_cluster
print_steps
[[ "${1:-}" == steps ]] || forward
