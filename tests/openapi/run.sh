#!/usr/bin/env bash
# Checks /openapi.json against the running server with an external validator (schemathesis):
# it generates requests from the document for the JSON management endpoints and checks that
# every answer's status, content type and body conform to what the document says, that no
# request gets a 5xx, that requests without the key are refused, and that invalid input is
# rejected. Bounded: a few examples per operation, the whole run under a time limit.
#
# Not checked: that *every* schema-valid value is accepted (schemathesis's
# positive_data_acceptance): Sluice also validates URLs, header-safe keys and unique names,
# which JSON Schema cannot express, and answers those with a documented 400.
#
# Usage: tests/openapi/run.sh   (needs target/debug/sluice; creates .venv-openapi)
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x .venv-openapi/bin/st ]; then
  python3 -m venv .venv-openapi
fi
.venv-openapi/bin/python -m pip install --quiet --disable-pip-version-check -r tests/openapi/requirements.txt

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key="openapi-check-management-key"
cat > "$work/config.yaml" <<YAML
listen: 127.0.0.1:$port
api-keys: [k1]
remote-management-key: $key
# schemathesis sends wrong keys on purpose; do not let that ban it.
management-ban: {max-failures: 1000000, duration: 1s}
auth-dir: auths
YAML
target/debug/sluice serve --config "$work/config.yaml" > "$work/sluice.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.05
done

status=0
root=$(pwd)
# schemathesis keeps a cache in its working directory: give it the temporary one.
cd "$work"
NO_PROXY=127.0.0.1 timeout 600 "$root/.venv-openapi/bin/st" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,ignored_auth \
  --max-examples 5 \
  --seed 6 \
  --request-timeout 10 \
  --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "---- sluice log (tail) ----"
  tail -n 40 "$work/sluice.log"
fi
exit "$status"
