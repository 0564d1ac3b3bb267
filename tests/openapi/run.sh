#!/usr/bin/env bash
# Checks /openapi.json against the running server with an external validator (schemathesis):
# it generates requests from the document for the JSON endpoints and checks that
# every answer's status, content type and body conform to what the document says, that no
# request gets a 5xx, that requests without the key are refused, and that invalid input is
# rejected. Bounded: a few examples per operation, the whole run under a time limit.
#
# Not checked: that *every* schema-valid value is accepted (schemathesis's
# positive_data_acceptance): Sluice also validates URLs, header-safe keys and unique names,
# which JSON Schema cannot express, and answers those with a documented 400.
#
# Three runs, one per credential (schemathesis sends one Authorization header per run):
#   1. /v0/management with the management key;
#   2. /api (seed 004: sign-in, keys, users, usage) with a session token from signing in as the
#      admin the config creates;
#   3. seed 000's token pool (/api/upload-token, /api/token-status) with its service key.
#
# Usage: tests/openapi/run.sh   (needs $CARGO_TARGET_DIR/debug/sluice, default target/;
# creates .venv-openapi)
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x .venv-openapi/bin/st ]; then
  python3 -m venv .venv-openapi
fi
.venv-openapi/bin/python -m pip install --quiet --disable-pip-version-check -r tests/openapi/requirements.txt

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key="openapi-check-management-key"
password="openapi-check-admin-password"
service_key="sk-openapi-check-service-key"
cat > "$work/config.yaml" <<YAML
listen: 127.0.0.1:$port
api-keys: [k1]
remote-management-key: $key
# schemathesis sends wrong keys on purpose; do not let that ban it.
management-ban: {max-failures: 1000000, duration: 1s}
auth-dir: auths
data-dir: $work/data
auth:
  admin: {username: openapi-admin, password: "$password"}
# Fuzzed keys are created by the dozen; room for them.
user-keys: {max-per-user: 1000}
token-pool: {service-key: $service_key, data-dir: $work/pool, refresh-url: "http://127.0.0.1:9/"}
providers:
  - {name: qwen-pool, kind: qwen, token-pool: true, base-url: "http://127.0.0.1:9", models: [{name: qwen-plus}]}
YAML
"${CARGO_TARGET_DIR:-target}/debug/sluice" serve --config "$work/config.yaml" > "$work/sluice.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.05
done
if ! curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
  echo "sluice did not start:"; cat "$work/sluice.log"; exit 1
fi

jwt=$(curl -fsS -H 'Content-Type: application/json' \
  -d "{\"username\":\"openapi-admin\",\"password\":\"$password\"}" \
  "http://127.0.0.1:$port/api/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')

status=0
root=$(pwd)
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,ignored_auth
st() {
  NO_PROXY=127.0.0.1 timeout 300 "$root/.venv-openapi/bin/st" run "http://127.0.0.1:$port/openapi.json" \
    --checks "$checks" \
    --max-examples 5 \
    --seed 6 \
    --request-timeout 10 \
    --no-color "$@"
}
# schemathesis keeps a cache in its working directory: give it the temporary one.
cd "$work"
echo "==== /v0/management (management key) ===="
st --include-path-regex '^/v0/management' --header "Authorization: Bearer $key" || status=$?
echo "==== /api (session token) ===="
st --include-path-regex '^/api/' \
  --exclude-path-regex '^/api/(upload-token|token-status)$' \
  --header "Authorization: Bearer $jwt" || status=$?
echo "==== token pool (service key) ===="
st --include-path-regex '^/api/(upload-token|token-status)$' \
  --header "Authorization: Bearer $service_key" || status=$?
if [ "$status" -ne 0 ]; then
  echo "---- sluice log (tail) ----"
  tail -n 40 "$work/sluice.log"
fi
exit "$status"
