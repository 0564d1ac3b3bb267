#!/usr/bin/env bash
# Rebuilds fuzz/seeds/ (the committed seed corpora) from the repository's golden tests and
# fixtures. Rerun after adding fixtures; the seeds are small text files (keep the total < 2 MB).
set -euo pipefail
cd "$(dirname "$0")"
dialect=../crates/sluice-dialect/tests/corpus
gateway=../crates/sluice/tests/corpus
config=..

# copy <target> <files…>: each file as <parent dir>-<name>, so names stay unique and readable.
copy() {
  local target=$1
  shift
  mkdir -p "seeds/$target"
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    cp "$f" "seeds/$target/$(basename "$(dirname "$f")")-$(basename "$f")"
  done
}

rm -rf seeds
for d in openai_chat openai_responses anthropic gemini; do
  copy "request_$d" "$dialect/$d"/requests/*.json
  copy "response_$d" "$dialect/$d"/responses/*.json "$dialect/$d"/response*.json
  copy "stream_$d" "$dialect/$d"/*.sse
done
copy sse "$dialect"/*/*.sse
copy json_edit "$dialect"/*/requests/*.json "$dialect"/requests/*.json

# The gateway's config: the example file whole, each of its top-level sections alone (small
# seeds mutate faster), and the README's YAML snippets.
mkdir -p seeds/config && cp "$config/config.example.yaml" seeds/config/example.yaml
awk '/^[a-z]/ { n++ } n { print > sprintf("seeds/config/section-%02d.yaml", n) }' "$config/config.example.yaml"
awk '/^```yaml/ { n++; on = 1; next } /^```/ { on = 0 } on { print > sprintf("seeds/config/readme-%d.yaml", n) }' "$config/README.md"

# Token files (the shapes auth_files.rs and sluice-oauth's tests read), some with a refresh
# answer after `\n\0\n`.
mkdir -p seeds/token_files
printf '%s' '{"type":"claude","access_token":"a1","refresh_token":"r1","email":"me@x","expired":"2027-01-01T00:00:00Z","claude_device_ids":["d"]}' >seeds/token_files/claude.json
printf '%s\n\0\n%s' '{"type":"gemini","token":{"access_token":"g1","refresh_token":"gr","expiry":"2020-01-01T00:00:00Z"},"project_id":"p","needs_relogin":{"reason":"x","since":"2026-01-01T00:00:00Z"}}' '{"access_token":"g2","expires_in":3599}' >seeds/token_files/gemini-refresh.json
printf '%s\n\0\n%s' '{"access_token":"q1","refresh_token":"qr","resource_url":"portal.qwen.ai","expiry_date":1}' '{"access_token":"q2","expires_in":10,"resource_url":"dashscope.aliyuncs.com"}' >seeds/token_files/qwen-refresh.json
printf '%s\n\0\n%s' '{"type":"codex","access_token":"eyJhbGciOiJub25lIn0.eyJleHAiOjE5MDAwMDAwMDB9.","refresh_token":"cr","account_id":"acct"}' '{"access_token":"c2","id_token":"eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImNAeCIsImh0dHBzOi8vYXBpLm9wZW5haS5jb20vYXV0aCI6eyJjaGF0Z3B0X2FjY291bnRfaWQiOiJhY2N0In19.","refresh_token":"cr2"}' >seeds/token_files/codex-refresh.json
printf '%s' '{"type":"qwen","access_token":"q","base_url":"https://127.0.0.1:9/v1","last_refresh":"2026-01-01T00:00:00Z"}' >seeds/token_files/qwen-base-url.json

# Token-pool upload bodies (every form upload.rs accepts).
mkdir -p seeds/token_upload
printf 'tok-a\n\n tok-b \n' >seeds/token_upload/lines.txt
printf '%s' '"tok"' >seeds/token_upload/string.json
printf '%s' '{"tokens":["a",{"access_token":"b"}]}' >seeds/token_upload/tokens.json
printf '%s' '[{"token":"a"},"b"]' >seeds/token_upload/array.json
printf '%s' '{"access_token":"at","refresh_token":"rt","token_type":"Bearer","resource_url":"portal.qwen.ai","expiry_date":1760000000000}' >seeds/token_upload/qwen.json

# Bedrock event streams: the recorded transcripts, as raw input (first byte 0).
mkdir -p seeds/bedrock_frames
for f in "$gateway"/bedrock/*.eventstream; do
  { printf '\0'; cat "$f"; } >"seeds/bedrock_frames/$(basename "$f")"
done
