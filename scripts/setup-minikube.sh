#!/usr/bin/env bash
# `make setup-minikube`: a local cluster with Knative Serving and Kourier, ready for
# `make deploy-knative`. Idempotent: run it again to repair or to resume after a failure.
#
# Environment: MINIKUBE_PROFILE (minikube), MINIKUBE_CPUS (3), MINIKUBE_MEMORY (4g: Knative's
# stated minimum for prototyping), KNATIVE_VERSION / KOURIER_VERSION / KUBERNETES_VERSION (pinned
# below), WAIT (300s).
set -euo pipefail

# Pinned: the versions the manifests here were checked against (Knative's docs install 1.21).
readonly KNATIVE_VERSION="${KNATIVE_VERSION:-1.21.0}"
readonly KOURIER_VERSION="${KOURIER_VERSION:-1.21.0}"
# Knative Serving 1.21's controllers refuse to start below Kubernetes 1.33 (knative.dev/pkg's
# version.CheckMinimumVersion at release-1.21); minikube before 1.36 starts older ones by default.
# 1.34 is in the range Serving 1.21 is tested on (1.33-1.35) and minikube 1.37's default.
readonly KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.34.0}"
readonly KUBERNETES_MIN_MINOR=33
readonly PROFILE="${MINIKUBE_PROFILE:-minikube}"
readonly CPUS="${MINIKUBE_CPUS:-3}"
readonly MEMORY="${MINIKUBE_MEMORY:-4g}"
readonly WAIT="${WAIT:-300s}"
readonly SERVING="https://github.com/knative/serving/releases/download/knative-v${KNATIVE_VERSION}"
readonly KOURIER="https://github.com/knative/net-kourier/releases/download/knative-v${KOURIER_VERSION}"

step() { echo "==> $*" >&2; }
fail() { echo "setup-minikube: $*" >&2; exit 1; }

missing=()
command -v minikube >/dev/null 2>&1 || missing+=("minikube (https://minikube.sigs.k8s.io/docs/start/)")
command -v kubectl >/dev/null 2>&1 || missing+=("kubectl (https://kubernetes.io/docs/tasks/tools/)")
((${#missing[@]} == 0)) || fail "missing: ${missing[*]}"

if [[ "$(minikube status -p "$PROFILE" --format '{{.Host}}' 2>/dev/null || true)" == Running ]]; then
  step "minikube profile '$PROFILE' is running"
  # Repairs a kubeconfig whose context points at an old IP or port.
  minikube update-context -p "$PROFILE" >/dev/null
else
  step "starting minikube profile '$PROFILE' (Kubernetes $KUBERNETES_VERSION, $CPUS CPUs, $MEMORY)"
  minikube start -p "$PROFILE" --kubernetes-version "$KUBERNETES_VERSION" --cpus "$CPUS" --memory "$MEMORY"
fi
kubectl config use-context "$PROFILE" >/dev/null
# A reused profile keeps its Kubernetes: too old, Knative's pods would only crash after the wait below.
version_re='"gitVersion": *"(v1\.([0-9]+)[^"]*)"'
{ [[ "$(kubectl get --raw /version)" =~ $version_re ]] && ((BASH_REMATCH[2] >= KUBERNETES_MIN_MINOR)); } ||
  fail "minikube profile '$PROFILE' runs Kubernetes ${BASH_REMATCH[1]:-of unknown version}; Knative Serving $KNATIVE_VERSION needs 1.$KUBERNETES_MIN_MINOR or later: minikube start -p $PROFILE --kubernetes-version $KUBERNETES_VERSION upgrades it (or minikube delete -p $PROFILE, then make setup-minikube)"

step "Knative Serving ${KNATIVE_VERSION}: CRDs"
kubectl apply -f "$SERVING/serving-crds.yaml"
kubectl wait --for=condition=Established crd -l knative.dev/crd-install=true --timeout="$WAIT"

step "Knative Serving ${KNATIVE_VERSION}: core"
kubectl apply -f "$SERVING/serving-core.yaml"

step "Kourier ${KOURIER_VERSION} as the ingress"
kubectl apply -f "$KOURIER/kourier.yaml"
kubectl patch configmap/config-network -n knative-serving --type merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'

# Magic DNS: <name>.<namespace>.<minikube ip>.sslip.io resolves to the minikube node, where Kourier
# listens on a NodePort. Set directly (not with serving-default-domain.yaml, which waits for a
# LoadBalancer IP that minikube only has under `minikube tunnel`); replacing the whole data map (JSON patch add) keeps
# this right when the IP changes.
ip="$(minikube ip -p "$PROFILE")"
step "default domain ${ip}.sslip.io"
kubectl patch configmap/config-domain -n knative-serving --type json \
  -p "[{\"op\":\"add\",\"path\":\"/data\",\"value\":{\"${ip}.sslip.io\":\"\"}}]"

# random-number:dev exists only in minikube's runtime: Knative must not try to resolve its tag to
# a digest on Docker Hub (the revision would fail with "unable to fetch image").
kubectl patch configmap/config-deployment -n knative-serving --type merge \
  -p '{"data":{"registries-skipping-tag-resolving":"kind.local,ko.local,dev.local,index.docker.io"}}'

step "waiting for Knative Serving and Kourier (up to $WAIT)"
kubectl wait deployment --all -n knative-serving --for=condition=Available --timeout="$WAIT"
kubectl wait deployment --all -n kourier-system --for=condition=Available --timeout="$WAIT"

step "ready: next, make deploy-knative"
