#!/usr/bin/env bash
# `make tls-cert DOMAIN=<name>`: a private CA (made once, then kept) and a server certificate for
# DOMAIN signed by it, for the ingress (`TLS=own make deploy-knative`) and the agent (`--ca-cert`).
#
#   tls-cert.sh DOMAIN        (or DOMAIN in the environment)
#
# Writes, in certs/ (git-ignored; CERTS_DIR overrides the folder):
#   ca.crt  ca.key (0600)                the CA: 10 years, only for DOMAIN and its subdomains (X.509
#                                        name constraint); reused on every run for those names
#   DOMAIN.crt  DOMAIN.key (0600)        DNS:DOMAIN, serverAuth, 397 days (the public-CA ceiling)
# A re-run keeps the CA and renews the server certificate only when it expires within 30 days (or no
# longer matches its key or the CA); a certificate it did not issue is never replaced. Keys are ECDSA
# P-256; private keys are never printed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly CA_DAYS=3650
readonly CERT_DAYS=397
readonly RENEW_WITHIN_SECONDS=$((30 * 24 * 3600))

domain="${1:-${DOMAIN:-}}"
[[ -n "$domain" ]] || die "DOMAIN is required: make tls-cert DOMAIN=numbers.example.org (the name the agent will call)"
# 251, not DNS's 253: DOMAIN.key must fit a file name (255 bytes on common file systems).
[[ "$domain" =~ $DOMAIN_RE && ${#domain} -le 251 ]] ||
  die "DOMAIN '$domain' is not a lower-case DNS name like numbers.example.org (labels of at most 63 characters, 251 in all so that DOMAIN.key fits a file name; no scheme, port, path or wildcard)"
have openssl ||
  die "openssl is not installed: install it (Debian/Ubuntu: apt-get install openssl; macOS: brew install openssl) and run again"

ca_crt="$CERTS/ca.crt"
ca_key="$CERTS/ca.key"
crt="$CERTS/$domain.crt"
key="$CERTS/$domain.key"
wrote=()
kept=()

# A certificate this script did not issue (all of ours come from a CA with O=random-number) is the
# user's own, as deploy-knative invites for TLS=own: never replaced, whatever state it is in.
issuer="$(openssl x509 -in "$crt" -noout -issuer -nameopt RFC2253 2>/dev/null)" || issuer="issuer=none openssl can read"
[[ ! -e "$crt" || ",${issuer#issuer=}," == *,O=random-number,* ]] ||
  die "$crt was not issued by this script (issuer: ${issuer#issuer=}): it may be your own, so it and its key are kept; move both away, or use another CERTS_DIR, and run again"

# Private keys are created 0600 from the start (umask), never readable by others even briefly.
umask 077
mkdir -p "$CERTS"
# Everything is made here first and only renamed into place at the end: a failure leaves nothing half-made.
tmp="$(mktemp -d "$CERTS/.tls-cert.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Runs openssl with its chatter held back; when it fails, the one-line error ends with openssl's words.
ossl() { err="$(openssl "${@:2}" 2>&1 >/dev/null)" || die "openssl could not create $1: ${err//$'\n'/ }"; }
new_key() { ossl "a key in $CERTS" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
enddate() { openssl x509 -in "$1" -noout -enddate | cut -d= -f2; }

# --- the CA -------------------------------------------------------------------------------------
if [[ -f "$ca_crt" && -f "$ca_key" ]]; then
  [[ "$(cert_pubkey "$ca_crt")" == "$(key_pubkey "$ca_key")" && -n "$(key_pubkey "$ca_key")" ]] ||
    die "$ca_crt and $ca_key do not belong together: move both away to make a new CA (then give the agent the new ca.crt)"
  # Renewing the CA silently would break every agent that trusts the old one: say so instead.
  openssl x509 -in "$ca_crt" -noout -checkend "$RENEW_WITHIN_SECONDS" >/dev/null ||
    die "$ca_crt expires within 30 days ($(enddate "$ca_crt")): move ca.crt and ca.key away, run again, then re-provision the agent with --ca-cert $ca_crt"
  # A CA made for another domain, or before CAs carried a name constraint, is not used for this one:
  # the agent trusting it would accept it for names it was never meant for.
  permitted="$(openssl x509 -in "$ca_crt" -noout -ext nameConstraints 2>/dev/null | sed -n 's/^ *DNS://p')"
  [[ -n "$permitted" && ("$domain" == "$permitted" || "$domain" == *".$permitted") ]] ||
    die "$ca_crt may vouch for ${permitted:-any name (it has no name constraint)}; $domain needs a CA for itself alone: move ca.crt and ca.key away (or set CERTS_DIR=certs/$domain), run again, then give the agent the new CA with --ca-cert"
  kept+=("$ca_crt")
elif [[ -e "$ca_crt" || -e "$ca_key" ]]; then
  die "found only one of $ca_crt and $ca_key: restore the other, or move it away to make a new CA"
else
  # X.509 caps a CN at 64 characters: a longer DOMAIN is named by its end (the name constraint has it whole).
  for_domain="$domain"
  ((${#domain} <= 35)) || for_domain="..${domain: -33}"
  new_key "$tmp/ca.key"
  ossl "the CA certificate" req -x509 -new -key "$tmp/ca.key" -sha256 -days "$CA_DAYS" \
    -subj "/O=random-number/CN=random-number private CA for $for_domain" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "nameConstraints=critical,permitted;DNS:$domain" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$tmp/ca.crt"
  chmod 0644 "$tmp/ca.crt"
  mv -f "$tmp/ca.key" "$tmp/ca.crt" "$CERTS/"
  wrote+=("$ca_crt" "$ca_key (0600)")
fi

# --- the server certificate ---------------------------------------------------------------------
# Why the current certificate cannot stay, or nothing when it can.
renew_reason() {
  if [[ ! -f "$crt" || ! -f "$key" ]]; then
    echo "there is none yet"
  elif ! openssl verify -CAfile "$ca_crt" -verify_hostname "$domain" -purpose sslserver "$crt" >/dev/null 2>&1; then
    echo "it does not verify for $domain against $ca_crt"
  elif [[ "$(cert_pubkey "$crt")" != "$(key_pubkey "$key")" ]]; then
    echo "it does not match $key"
  elif ! openssl x509 -in "$crt" -noout -checkend "$RENEW_WITHIN_SECONDS" >/dev/null; then
    echo "it expires within 30 days ($(enddate "$crt"))"
  fi
}

reason="$(renew_reason)"
if [[ -z "$reason" ]]; then
  kept+=("$crt" "$key")
else
  say "issuing a certificate for $domain: $reason"
  # The SAN carries the name; the CN too when it fits X.509's 64 characters. Without it the subject
  # names us: an empty one would need a critical SAN (RFC 5280).
  subject="/CN=$domain"
  ((${#domain} <= 64)) || subject="/O=random-number"
  new_key "$tmp/$domain.key"
  ossl "the certificate request" req -new -key "$tmp/$domain.key" -subj "$subject" -out "$tmp/server.csr"
  printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth \
    "subjectAltName=DNS:$domain" subjectKeyIdentifier=hash authorityKeyIdentifier=keyid >"$tmp/server.ext"
  ossl "the certificate for $domain" x509 -req -in "$tmp/server.csr" -CA "$ca_crt" -CAkey "$ca_key" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days "$CERT_DAYS" -extfile "$tmp/server.ext" \
    -out "$tmp/$domain.crt"
  chmod 0644 "$tmp/$domain.crt"
  # Key first, then certificate (mv renames in this order): a reader pairing them by name sees the old
  # pair or the new one, except for the instant between the two renames.
  mv -f "$tmp/$domain.key" "$tmp/$domain.crt" "$CERTS/"
  wrote+=("$crt" "$key (0600)")
fi

((${#wrote[@]} == 0)) || printf 'wrote: %s\n' "${wrote[@]}"
((${#kept[@]} == 0)) || printf 'kept:  %s\n' "${kept[@]}"
cat <<EOF
$domain: valid until $(enddate "$crt") (renewed by this command from 30 days before)
next:
  ${CERTS_DIR:+CERTS_DIR=$(printf %q "$CERTS_DIR") }DOMAIN=$domain TLS=own make deploy-knative   # the cluster serves https://$domain/ with it
  npm run provision-ec2 -- --service-url https://$domain/ --ca-cert $(printf %q "${ca_crt#"$ROOT"/}")   # the agent trusts the CA
EOF
