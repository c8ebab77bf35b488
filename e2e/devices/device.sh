#!/bin/sh
# A device that onboards itself through Gatehouse's client registry with nothing but openssl and
# curl (and sed, tr, base64 from coreutils or busybox):
#
#   1. makes its private key (RSA 2048, EC P-256 or Ed25519) and a CSR whose subject is
#      CN=<username>; both are kept in the device directory and reused when the script runs
#      again, so that a restarted device sends the very same request;
#   2. sends POST /api/client-registry/register {"username", "csr": base64 of the PEM, "context"}
#      and sends it again every --interval seconds while the answer is 202 (recorded, waiting for
#      an administrator) or 423 (the registry is not open yet), at most --tries times;
#   3. on 201 decodes {"certificate": base64 of the PEM}, checks it with
#      `openssl verify -CAfile` and that it carries the device's own public key;
#   4. calls GET /api/session on the HTTPS listener with the certificate (mutual TLS) and prints
#      the answer on stdout.
#
# Progress goes to stderr; stdout holds only the answer of /api/session. Exit status 0 when the
# mTLS call answered 200; 1 when anything failed (with a message saying what); 2 on bad usage.
#
# Usage: device.sh --username NAME [--key-type rsa|ec|ed25519] [--url URL] [--tls-url URL]
#                  [--ca FILE] [--dir DIR] [--context TEXT] [--tries N] [--interval SECONDS]
# Every option has an environment variable (the option wins):
#   --url       GATEHOUSE_URL       registry base URL (http:// or https://)  http://127.0.0.1:8080
#   --tls-url   GATEHOUSE_TLS_URL   the HTTPS listener ([tls] listen)        https://127.0.0.1:8443
#   --ca        GATEHOUSE_CA        the CA certificate (PEM) that signs Gatehouse's server
#                                   certificate and the device's             ./ca.crt
#   --username  DEVICE_USERNAME     the username asked for; the CSR's CN     (required)
#   --key-type  DEVICE_KEY_TYPE     rsa (2048 bits), ec (P-256), ed25519     ec
#   --dir       DEVICE_DIR          where device.key, device.csr, device.crt go  ./<username>
#   --context   DEVICE_CONTEXT      free text shown to the administrator     (none)
#   --tries     DEVICE_TRIES        registration requests at most            120
#   --interval  DEVICE_INTERVAL     seconds between them                     1
set -eu

url="${GATEHOUSE_URL:-http://127.0.0.1:8080}"
tls_url="${GATEHOUSE_TLS_URL:-https://127.0.0.1:8443}"
ca="${GATEHOUSE_CA:-./ca.crt}"
username="${DEVICE_USERNAME:-}"
key_type="${DEVICE_KEY_TYPE:-ec}"
dir="${DEVICE_DIR:-}"
context="${DEVICE_CONTEXT:-}"
tries="${DEVICE_TRIES:-120}"
interval="${DEVICE_INTERVAL:-1}"

usage() {
    sed -n 's/^# \{0,1\}//; /^Usage:/,/^ *--interval/p' "$0" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --url) url="${2:?--url needs a value}"; shift 2 ;;
        --tls-url) tls_url="${2:?--tls-url needs a value}"; shift 2 ;;
        --ca) ca="${2:?--ca needs a value}"; shift 2 ;;
        --username) username="${2:?--username needs a value}"; shift 2 ;;
        --key-type) key_type="${2:?--key-type needs a value}"; shift 2 ;;
        --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
        --context) context="${2?--context needs a value}"; shift 2 ;;
        --tries) tries="${2:?--tries needs a value}"; shift 2 ;;
        --interval) interval="${2:?--interval needs a value}"; shift 2 ;;
        -h | --help) usage ;;
        *) echo "device: unknown argument: $1" >&2; usage ;;
    esac
done

say() { echo "device $username: $*" >&2; }
fail() { say "error: $*"; exit 1; }

[ -n "$username" ] || { echo "device: --username (or DEVICE_USERNAME) is required" >&2; usage; }
# Gatehouse's username rule; it also keeps the name safe inside JSON and the CSR subject.
case "$username" in
    [A-Za-z0-9]*) ;;
    *) fail "the username must start with an ASCII letter or digit" ;;
esac
case "$username" in
    *[!A-Za-z0-9_.@+-]*) fail "the username may hold only ASCII letters, digits and _ . @ + -" ;;
esac
case "$tries" in '' | *[!0-9]*) fail "--tries must be a number" ;; esac
case "$interval" in '' | *[!0-9]*) fail "--interval must be a whole number of seconds" ;; esac
[ -r "$ca" ] || fail "the CA certificate $ca cannot be read"
for tool in openssl curl sed tr base64; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done

dir="${dir:-./$username}"
mkdir -p "$dir"
chmod 700 "$dir"
key="$dir/device.key"
csr="$dir/device.csr"
crt="$dir/device.crt"
answer="$dir/answer.json"
headers="$dir/answer.headers"

# 1. The key and the CSR, made once.
if [ ! -s "$key" ]; then
    say "making a $key_type key"
    # The key is readable by the device only (umask in a subshell: the rest keeps its own).
    case "$key_type" in
        rsa) (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key") ;;
        ec) (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key") ;;
        ed25519) (umask 077 && openssl genpkey -algorithm ED25519 -out "$key") ;;
        *) fail "--key-type must be rsa, ec or ed25519, not '$key_type'" ;;
    esac 2>/dev/null || fail "openssl could not make the $key_type key"
    rm -f "$csr" "$crt"
fi
if [ ! -s "$csr" ]; then
    # Only the subject's CN counts: Gatehouse ignores any requested extension.
    openssl req -new -key "$key" -subj "/CN=$username" -out "$csr" \
        || fail "openssl could not make the CSR"
fi

# JSON string content: backslashes and double quotes escaped, line breaks dropped.
json_text() { printf '%s' "$1" | tr -d '\r\n' | sed 's/\\/\\\\/g; s/"/\\"/g'; }

csr_b64="$(base64 <"$csr" | tr -d '\n')"
body="{\"username\":\"$username\",\"csr\":\"$csr_b64\""
if [ -n "$context" ]; then
    body="$body,\"context\":\"$(json_text "$context")\""
fi
body="$body}"

# 2. Register, then send the same request again until it is granted.
register_url="${url%/}/api/client-registry/register"
granted=""
recorded=""
attempt=0
while [ "$attempt" -lt "$tries" ]; do
    attempt=$((attempt + 1))
    status="$(curl -sS --cacert "$ca" -o "$answer" -D "$headers" -w '%{http_code}' \
        -H 'Content-Type: application/json' --data-binary "$body" "$register_url")" \
        || { say "attempt $attempt: the registry cannot be reached (curl exit $?)"; status=000; }
    wait_for="$interval"
    case "$status" in
        201) granted=yes; break ;;
        202)
            if [ -z "$recorded" ] || [ $((attempt % 10)) -eq 0 ]; then
                say "attempt $attempt: recorded; waiting for an administrator to grant it"
            fi
            recorded=yes
            ;;
        423) say "attempt $attempt: the registry is not open ($(cat "$answer"))" ;;
        429)
            # Retry-After says how long this address must wait.
            retry="$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$headers" | head -n 1)"
            wait_for="${retry:-$interval}"
            say "attempt $attempt: rate limited, waiting ${wait_for} s"
            ;;
        000) ;;
        5??) say "attempt $attempt: the server answered $status: $(cat "$answer")" ;;
        *) fail "the registry refused the request with $status: $(cat "$answer")" ;;
    esac
    if [ "$attempt" -lt "$tries" ]; then
        sleep "$wait_for"
    fi
done
[ -n "$granted" ] || fail "not granted after $tries requests"

# 3. The certificate: base64 of its PEM in {"certificate": "..."}.
certificate_b64="$(tr -d '\n' <"$answer" | sed -n 's|.*"certificate" *: *"\([A-Za-z0-9+/=]*\)".*|\1|p')"
[ -n "$certificate_b64" ] || fail "granted, but the answer holds no certificate: $(cat "$answer")"
printf '%s' "$certificate_b64" | base64 -d >"$crt" 2>/dev/null \
    || fail "the certificate is not valid base64"
openssl verify -CAfile "$ca" "$crt" >&2 || fail "the certificate does not chain to $ca"
[ "$(openssl x509 -in "$crt" -noout -pubkey)" = "$(openssl pkey -in "$key" -pubout)" ] \
    || fail "the certificate does not carry this device's public key"
say "granted after $attempt request(s): $(openssl x509 -in "$crt" -noout -subject -enddate | tr '\n' ' ')"

# 4. Mutual TLS: the certificate alone authenticates the device.
session="$(curl -sS --cacert "$ca" --cert "$crt" --key "$key" -w '\n%{http_code}' \
    "${tls_url%/}/api/session")" || fail "the mTLS call to $tls_url failed (curl exit $?)"
status="$(printf '%s\n' "$session" | tail -n 1)"
session="$(printf '%s\n' "$session" | sed '$d')"
[ "$status" = 200 ] || fail "GET /api/session over mTLS answered $status: $session"
say "authenticated over mTLS"
printf '%s\n' "$session"
