#!/usr/bin/env bash
# The steps of `make deploy-knative` / `make undeploy-knative` that need logic. The Makefile calls
# them one by one, so `make -n deploy-knative` shows the whole sequence; each step can be run alone:
#
#   deploy-knative.sh check  <minikube|cloud> [IMAGE]   tools, inputs, kubectl context, Knative present
#   deploy-knative.sh cluster <minikube|cloud>          the context and Knative alone (before an undeploy)
#   deploy-knative.sh secret <namespace>                token Secret from $API_TOKEN (none: no auth)
#   deploy-knative.sh tls-secret <overlay> <namespace>  TLS Secret from certs/$DOMAIN.crt/.key (TLS=own)
#   deploy-knative.sh render <overlay> [IMAGE] [NS]     manifests with IMAGE (and $DOMAIN) on stdout; with
#                                                       namespace NS also the rollout annotation (asks the cluster)
#   deploy-knative.sh url    <overlay> <namespace>      the Service's URL and a curl that reaches it
#   deploy-knative.sh not-ready <namespace>             why the Service did not become Ready
#
# Environment: API_TOKEN (never printed; unset keeps the existing Secret; `none` deploys without auth,
# kustomize/components/no-auth), DOMAIN (adds the domain-mapping component), TLS
# (with DOMAIN: `own` = your certificate from certs/, the default on minikube; `cert-manager` = Knative's
# integration, the default on cloud), CERTS_DIR (default certs/), MINIKUBE_PROFILE (default minikube).
# Nothing here writes into the working tree.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly SERVICE=random-number
# kustomize's patch target for our Knative Service.
readonly KSVC="group: serving.knative.dev, kind: Service, name: $SERVICE"
readonly SECRET=random-number-api-token
# Named by kustomize/components/own-tls.
readonly TLS_SECRET=random-number-tls

# The check_* functions add what is wrong to `problems`: `check` reports them all at once, the other
# steps stop at the first (refuse).
problems=()
problem() { problems+=("$*"); }
refuse() { ((${#problems[@]} == 0)) || die "${problems[0]}"; }

# IMAGE: none on minikube; on cloud a pinned registry reference.
check_image() {
  local overlay="$1" image="$2" last="${2##*/}"
  if [[ "$overlay" == minikube ]]; then
    [[ -z "$image" ]] || problem "IMAGE is for OVERLAY=cloud; minikube always runs random-number:dev built inside minikube"
  elif [[ -z "$image" ]]; then
    problem "IMAGE is required for OVERLAY=cloud: pass IMAGE=registry.example.com/you/random-number:1.0.0 (a tag or @sha256 digest you can push to)"
  elif [[ "$image" =~ [[:space:]\'\"] ]]; then
    problem "IMAGE '$image' contains spaces or quotes: expected registry/name:tag or registry/name@sha256:digest"
  # The repository path (after a registry host, before the tag or digest): Docker refuses upper case.
  elif [[ "$image" =~ ^([^/]*[.:][^/]*/)?([^:@]*) && "${BASH_REMATCH[2]}" == *[A-Z]* ]]; then
    problem "IMAGE '$image' has upper-case letters in its repository name '${BASH_REMATCH[2]}', which Docker refuses: use lower case"
  elif [[ "$image" == *@* ]]; then
    [[ "${image#*@}" =~ ^sha256:[0-9a-f]{64}$ ]] || problem "IMAGE '$image' has a malformed digest: expected @sha256:<64 hex digits>"
  elif [[ "$last" != *:* ]]; then
    problem "IMAGE '$image' has no tag: that means :latest; give an explicit tag or digest"
  elif [[ "${last##*:}" == latest ]]; then
    problem "IMAGE '$image' uses :latest, which Knative cannot pin to one revision; use a version tag or a digest"
  elif [[ "$image" != */* ]]; then
    problem "IMAGE '$image' names no registry: the cluster must pull it, e.g. ghcr.io/you/random-number:1.0.0"
  fi
}

# The rule of lib/contract.ts (TOKEN_PATTERN; test/contract.test.ts keeps them equal), checked before
# the cluster is touched: a token the service would refuse at start never reaches a Secret.
token_re='^[A-Za-z0-9._~+/-]{32,}=*$'
check_token() {
  [[ -z "${API_TOKEN:-}" || "$API_TOKEN" == none || "$API_TOKEN" =~ $token_re ]] ||
    problem "API_TOKEN must be a Bearer token: letters, digits and -._~+/ (then = padding), at least 32 of them, as \`openssl rand -hex 32\` makes"
}

# How TLS is done for DOMAIN: TLS when given, else cert-manager on cloud (a public CA) and own on
# minikube (no cert-manager there); nothing without DOMAIN.
tls_mode() {
  local default=own
  [[ "$1" != cloud ]] || default=cert-manager
  [[ -z "${DOMAIN:-}" ]] || echo "${TLS:-$default}"
}

# TLS and DOMAIN for this overlay. With `mode-only`, the certificate files are not looked at
# (rendering works on a clean clone, without certs/).
check_tls() {
  local overlay="$1" what="${2:-all}" mode
  [[ -z "${DOMAIN:-}" || "$DOMAIN" =~ $DOMAIN_RE ]] || problem "DOMAIN '$DOMAIN' is not a lower-case DNS name like api.example.org"
  mode="$(tls_mode "$overlay")"
  case "$mode" in
    '') [[ -z "${TLS:-}" ]] || problem "TLS=$TLS needs DOMAIN: the name the certificate is for, e.g. DOMAIN=numbers.example.org TLS=$TLS" ;;
    own) [[ "$what" == mode-only ]] || check_cert ;;
    cert-manager)
      [[ "$overlay" == cloud ]] ||
        problem "TLS=cert-manager is for OVERLAY=cloud (make setup-minikube installs no cert-manager): on minikube use TLS=own with make tls-cert DOMAIN=$DOMAIN"
      ;;
    *) problem "TLS must be own (your certificate, from make tls-cert) or cert-manager (Knative's integration) (got '$mode')" ;;
  esac
}

# The certificate for TLS=own: present, for DOMAIN, not expiring, matching its key (checked with openssl
# when it is installed; the cluster would otherwise serve it and only the agent would complain).
check_cert() {
  local crt="$CERTS/$DOMAIN.crt" key="$CERTS/$DOMAIN.key" again="${CERTS_DIR:+CERTS_DIR=$(printf %q "$CERTS_DIR") }make tls-cert DOMAIN=$DOMAIN"
  if [[ ! -r "$crt" || ! -r "$key" ]]; then
    problem "TLS=own needs $crt and $key: run $again (or put your own certificate and key there)"
  elif ! have openssl; then
    return 0
  elif [[ "$(openssl x509 -in "$crt" -noout -checkhost "$DOMAIN" 2>/dev/null)" != *"does match"* ]]; then
    problem "$crt is not a certificate for $DOMAIN: run $again"
  elif ! openssl x509 -in "$crt" -noout -checkend 0 >/dev/null 2>&1; then
    problem "$crt has expired: run $again to renew it"
  elif [[ "$(cert_pubkey "$crt")" != "$(key_pubkey "$key")" ]]; then
    problem "$key is not the key of $crt: run $again"
  fi
}

# random-number:dev must not be resolved to a digest on Docker Hub (setup-minikube arranges that).
local_tags_skipped() {
  local registries
  registries="$(kubectl get configmap config-deployment -n knative-serving \
    -o jsonpath='{.data.registries-skipping-tag-resolving}' 2>/dev/null)" || return 1
  [[ ",${registries// /}," == *,index.docker.io,* ]]
}

# kubectl's context (on minikube: the profile's), its cluster reachable, Knative there; sets `context`.
# Shared by deploy and undeploy: neither acts on a cluster the other would not. With `deploy` (as $2),
# also what only a deploy needs.
check_cluster() {
  local overlay="$1" fix='point kubectl at your cluster, e.g. kubectl config use-context <name>'
  [[ "$overlay" != minikube ]] || fix='run make setup-minikube'
  if ! have kubectl; then
    problem "kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)"
  elif ! context="$(kubectl config current-context 2>/dev/null)" || [[ -z "$context" ]]; then
    problem "kubectl has no current context (no cluster configured): $fix"
  elif [[ "$overlay" == minikube && "$context" != "$PROFILE" ]]; then
    problem "kubectl's current context is '$context', not minikube profile '$PROFILE': run kubectl config use-context $PROFILE (or make setup-minikube)"
  elif ! kubectl get --raw /version --request-timeout=15s >/dev/null 2>&1; then
    problem "cannot reach the cluster of kubectl context '$context': is it running? (minikube: make setup-minikube)"
  # grep without -q reads to the end: under pipefail, -q's early exit could fail kubectl (SIGPIPE).
  elif ! kubectl api-resources --api-group=serving.knative.dev -o name 2>/dev/null | grep -x services.serving.knative.dev >/dev/null; then
    problem "Knative Serving is not installed in context '$context' (no services.serving.knative.dev): minikube: make setup-minikube; elsewhere: https://knative.dev/docs/install/"
  elif [[ "$overlay" == minikube && "${2:-}" == deploy ]] && ! local_tags_skipped; then
    problem "Knative would look up random-number:dev on Docker Hub and fail: run make setup-minikube (it adds index.docker.io to registries-skipping-tag-resolving)"
  fi
}

# Reports every problem at once (inputs, tools, kubectl context, cluster, Knative), then fails.
cmd_check() {
  local overlay="$1" image="${2:-}"
  check_image "$overlay" "$image"
  check_token
  check_tls "$overlay"
  [[ "$overlay" != minikube ]] || have minikube ||
    problem "minikube is not installed (https://minikube.sigs.k8s.io/docs/start/), then run: make setup-minikube"
  # An IMAGE by digest is deployed as already pushed: nothing to build.
  [[ "$overlay" != cloud || "$image" == *@* ]] || have docker ||
    problem "docker is not installed: it builds and pushes IMAGE (https://docs.docker.com/get-docker/); or give IMAGE by digest, already pushed"
  check_cluster "$overlay" deploy

  if ((${#problems[@]})); then
    say "cannot deploy OVERLAY=$overlay:"
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
  fi
  say "ready to deploy OVERLAY=$overlay to context '$context'"
}

# Before `make undeploy-knative` deletes anything: the cluster deploy-knative would use, or stop.
cmd_cluster() {
  check_cluster "$1"
  refuse
  say "removing OVERLAY=$1 from context '$context'"
}

# Writes the Secret on stdin by server-side apply, which keeps no kubectl.kubernetes.io/last-applied-
# configuration copy of its data (client-side apply does: readable wherever annotations are), then removes
# the copy an earlier client-side apply left. Our own field manager: as "kubectl", the API server would
# keep that copy in sync. --force-conflicts: this step owns the Secret, also fields an edit took before.
apply_secret() {
  kubectl apply --server-side --field-manager=random-number-deploy --force-conflicts -f -
  kubectl annotate secret "$1" -n "$2" kubectl.kubernetes.io/last-applied-configuration- >/dev/null
}

# Creates or updates the token Secret from $API_TOKEN. The value goes through a pipe, never argv
# or the terminal. Without API_TOKEN an existing Secret is kept; if there is none the pods could not
# start (the Secret is required), so this stops, before make builds anything, and says what to do.
# API_TOKEN=none writes nothing: `render` adds the no-auth component.
cmd_secret() {
  local namespace="$1" found
  if [[ -z "${API_TOKEN:-}" ]]; then
    found="$(kubectl get secret "$SECRET" -n "$namespace" --ignore-not-found -o name)"
    [[ -n "$found" ]] ||
      die "API_TOKEN is not set and namespace $namespace has no Secret $SECRET: set a token, e.g. API_TOKEN=\$(openssl rand -hex 32) make deploy-knative, or API_TOKEN=none to run without auth"
    say "API_TOKEN not set: the token already in Secret $SECRET is kept"
  elif [[ "$API_TOKEN" == none ]]; then
    say "API_TOKEN=none: no token Secret; the service will answer WITHOUT auth (kustomize/components/no-auth)"
  else
    check_token
    refuse
    # The namespace must exist before its Secret (the overlay's apply adds its labels later).
    kubectl get namespace "$namespace" >/dev/null 2>&1 || kubectl create namespace "$namespace" >/dev/null
    echo "+ kubectl create secret generic $SECRET -n $namespace --from-file=token=/dev/stdin (from API_TOKEN) | kubectl apply --server-side -f -" >&2
    printf '%s' "$API_TOKEN" |
      kubectl create secret generic "$SECRET" -n "$namespace" --from-file=token=/dev/stdin \
        --dry-run=client -o yaml |
      apply_secret "$SECRET" "$namespace"
    # Pods read the token when they start: `render` (the rollout annotation) makes new ones.
  fi
}

# TLS=own: creates or updates the kubernetes.io/tls Secret the DomainMapping names, from
# certs/$DOMAIN.crt and .key. The key goes from its file through a pipe to the cluster: never to the
# terminal, never into the working tree. Nothing to do for cert-manager or without DOMAIN.
cmd_tls_secret() {
  local overlay="$1" namespace="$2" mode
  check_tls "$overlay"
  refuse
  mode="$(tls_mode "$overlay")"
  if [[ "$mode" != own ]]; then
    say "TLS=${mode:-none}: no TLS Secret to write${mode:+ (the certificate comes from cert-manager)}"
    return
  fi
  kubectl get namespace "$namespace" >/dev/null 2>&1 || kubectl create namespace "$namespace" >/dev/null
  echo "+ kubectl create secret tls $TLS_SECRET -n $namespace --cert=$CERTS/$DOMAIN.crt --key=$CERTS/$DOMAIN.key | kubectl apply --server-side -f -" >&2
  # The certificate-uid label lets Kourier find the Secret when its secret informer filtering is on
  # (ENABLE_SECRET_INFORMER_FILTERING_BY_CERT_UID; off by default).
  kubectl create secret tls "$TLS_SECRET" -n "$namespace" --cert="$CERTS/$DOMAIN.crt" --key="$CERTS/$DOMAIN.key" \
    --dry-run=client -o yaml |
    kubectl label --local -f - -o yaml \
      "networking.internal.knative.dev/certificate-uid=$TLS_SECRET" app.kubernetes.io/name=random-number |
    apply_secret "$TLS_SECRET" "$namespace"
  # Kourier reloads a changed Secret by itself: renewing is `make tls-cert` and this step again.
}

# Sets `rollout`: what the pods read when they start, for the revision template's annotation
# random-number/rollout. Changed, the Service's template changes and Knative rolls out a new Revision;
# otherwise a warm pod (the agent's polls keep one) would keep the old token or code for good. The token
# Secret's resourceVersion, never the token; the ID of the image make built (IMAGE by digest is in the
# template already). Nothing changed: the same annotation, no new Revision.
rollout_key() {
  local overlay="$1" image="$2" namespace="$3" secret=none id=""
  [[ "${API_TOKEN:-}" == none ]] ||
    secret="$(kubectl get secret "$SECRET" -n "$namespace" -o 'jsonpath={.metadata.resourceVersion}')"
  if [[ "$overlay" == minikube ]]; then
    id="$(minikube image ls --format json -p "$PROFILE" | tr '{' '\n' | grep -E '"(docker\.io/library/)?random-number:dev"' |
      grep -o '"id":"[^"]*' | cut -d'"' -f4)" || die "no image random-number:dev in minikube image ls -p $PROFILE (make deploy-knative builds it before this step)"
  elif [[ "$image" != *@* ]]; then
    id="$(docker image inspect --format '{{.Id}}' "$image")"
  fi
  rollout="token-secret=$secret${id:+ image=$id}"
}

# One entry of a kustomization's `patches:`: a JSON patch of one op (target, op, path, value).
patch_op() { printf "  - target: {%s}\n    patch: '[{\"op\": \"%s\", \"path\": \"%s\", \"value\": \"%s\"}]'\n" "$@"; }

# Prints the manifests to apply: the overlay, with IMAGE (cloud), API_TOKEN=none, DOMAIN/TLS and (given the
# namespace) the rollout annotation applied in a throw-away kustomization over a copy of kustomize/, so
# the committed overlays stay clean placeholders.
cmd_render() {
  local overlay="$1" image="${2:-}" tmp rollout=""
  check_image "$overlay" "$image"
  check_tls "$overlay" mode-only
  refuse
  [[ -z "${3:-}" ]] || rollout_key "$overlay" "$image" "$3"
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand $tmp now: it is local to this function
  trap "rm -rf '$tmp'" EXIT
  cp -R "$ROOT/kustomize" "$tmp/kustomize"
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources:"
    echo "  - kustomize/overlays/$overlay"
    echo "components:"
    [[ "${API_TOKEN:-}" != none ]] || echo "  - kustomize/components/no-auth"
    [[ -z "${DOMAIN:-}" ]] || echo "  - kustomize/components/domain-mapping"
    [[ "$(tls_mode "$overlay")" != own ]] || echo "  - kustomize/components/own-tls"
    echo "patches:"
    # IMAGE as given (registry/name:tag or @digest) in place of the cloud overlay's placeholder.
    [[ "$overlay" != cloud ]] || patch_op "$KSVC" replace /spec/template/spec/containers/0/image "$image"
    [[ -z "$rollout" ]] || patch_op "$KSVC" add /spec/template/metadata/annotations/random-number~1rollout "$rollout"
    # The domain component's two objects, the DomainMapping and its ClusterDomainClaim, are both named
    # after the placeholder domain: DOMAIN replaces it.
    [[ -z "${DOMAIN:-}" ]] || patch_op "name: random-number.example.com" replace /metadata/name "$DOMAIN"
  } >"$tmp/kustomization.yaml"
  kubectl kustomize "$tmp"
}

# Prints the URL and a curl that reaches it; on minikube through Kourier's NodePort, because port
# 80 of the sslip.io name is only served with `minikube tunnel`.
cmd_url() {
  local overlay="$1" namespace="$2" url host auth="" cacert="" ip port
  url="$(kubectl get ksvc "$SERVICE" -n "$namespace" -o jsonpath='{.status.url}')"
  [[ -n "$url" ]] || die "ksvc/$SERVICE in namespace $namespace has no URL yet: kubectl describe ksvc $SERVICE -n $namespace"
  # The curl refers to the variable, never to the token itself.
  # shellcheck disable=SC2016 # $API_TOKEN is meant literally: the user's shell expands it
  [[ "${API_TOKEN:-}" == none ]] || auth=' -H "Authorization: Bearer $API_TOKEN"'
  [[ "$(tls_mode "$overlay")" != own ]] || cacert=" --cacert ${CERTS#"$ROOT"/}/ca.crt"
  host="${url#*://}"
  echo "URL: $url"
  if [[ "$overlay" == minikube ]]; then
    ip="$(minikube ip -p "$PROFILE")"
    port="$(kubectl get service kourier -n kourier-system -o jsonpath='{.spec.ports[?(@.name=="http2")].nodePort}')"
    echo "curl -H 'Accept: application/json'$auth http://$host:$port/"
    echo "# without DNS (sslip.io unreachable): curl -H 'Host: $host'$auth http://$ip:$port/"
    echo "# macOS/Windows docker driver: use the address printed by: minikube service kourier -n kourier-system --url -p $PROFILE"
    if [[ -n "${DOMAIN:-}" ]]; then
      port="$(kubectl get service kourier -n kourier-system -o jsonpath='{.spec.ports[?(@.name=="https")].nodePort}')"
      # Kourier routes DOMAIN and DOMAIN:<any port> alike, and picks the certificate by SNI (DOMAIN).
      echo "curl$cacert --resolve $DOMAIN:$port:$ip -H 'Accept: application/json'$auth https://$DOMAIN:$port/   # once kubectl get domainmapping $DOMAIN -n $namespace is Ready"
      echo "# from the internet (EC2): DOMAIN=$DOMAIN make expose-minikube"
    fi
  else
    echo "curl -H 'Accept: application/json'$auth $url/"
    if [[ -n "${DOMAIN:-}" ]]; then
      echo "curl$cacert -H 'Accept: application/json'$auth https://$DOMAIN/   # once DNS points at the ingress and the DomainMapping is Ready:"
      echo "#   kubectl get domainmapping $DOMAIN -n $namespace"
    fi
  fi
  echo "# watch it scale to zero: kubectl get pods -n $namespace -l serving.knative.dev/service=$SERVICE -w"
}

# After a failed `kubectl wait`: why the Service is not Ready, from its own conditions.
cmd_not_ready() {
  local namespace="$1"
  say "ksvc/$SERVICE in namespace $namespace is not Ready; its conditions:"
  kubectl get ksvc "$SERVICE" -n "$namespace" \
    -o jsonpath='{range .status.conditions[*]}  {.type}={.status} {.reason} {.message}{"\n"}{end}' >&2 || true
  echo "  more: kubectl get revisions,pods -n $namespace -l serving.knative.dev/service=$SERVICE; kubectl describe revisions -n $namespace" >&2
  exit 1
}

main() {
  local cmd="${1:-}"
  (($# > 0)) && shift
  case "$cmd" in
    check | render) (($# >= 1)) || die "usage: $0 $cmd <minikube|cloud> [IMAGE] ... (see the comment at the top of this file)" ;;
    cluster) (($# == 1)) || die "usage: $0 $cmd <minikube|cloud>" ;;
    tls-secret | url) (($# == 2)) || die "usage: $0 $cmd <minikube|cloud> <namespace>" ;;
    secret | not-ready) (($# == 1)) || die "usage: $0 $cmd <namespace>" ;;
    *) die "usage: $0 <check|cluster|secret|tls-secret|render|url|not-ready> ... (see the comment at the top of this file)" ;;
  esac
  # Every step but these two takes the overlay first.
  [[ "$cmd" == secret || "$cmd" == not-ready || "$1" == minikube || "$1" == cloud ]] ||
    die "unknown OVERLAY '$1': use OVERLAY=minikube or OVERLAY=cloud (folders in kustomize/overlays)"
  "cmd_${cmd//-/_}" "$@"
}

main "$@"
