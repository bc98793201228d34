# shellcheck shell=bash
# What the Knative and TLS scripts (deploy-knative, expose-minikube, tls-cert) and demo share:
# sourced, never run. Their messages start with the script's name.
# shellcheck disable=SC2034 # the variables are used by the scripts that source this file

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CERTS="${CERTS_DIR:-$ROOT/certs}"
PROFILE="${MINIKUBE_PROFILE:-minikube}"
# A lower-case DNS name with at least one dot, labels of 1-63 characters (RFC 1035): the DomainMapping's
# name and the certificate's SAN.
DOMAIN_RE='^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z][-a-z0-9]{0,61}[a-z0-9]$'
SELF="${0##*/}"

say() { echo "${SELF%.sh}: $*" >&2; }

die() {
  say "$@"
  exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# The public key of a certificate, or of a private key: equal when the two belong together.
cert_pubkey() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
key_pubkey() { openssl pkey -in "$1" -pubout 2>/dev/null; }
