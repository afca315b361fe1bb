#!/usr/bin/env bash
# Runs sigild on its embedded default (a software Ed25519 key "mediator" in
# ./sigil-data, gRPC 127.0.0.1:7700, HTTP 127.0.0.1:7701), appends one
# receipt to chain "demo", verifies the chain against the key directory the
# daemon serves and against its receipt log, and stops the daemon cleanly
# (the run ends with a session_close and its seal). Run it again: the chain
# resumes with a restart open.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --quiet
bin=${CARGO_TARGET_DIR:-target}/release
data=${SIGIL_DATA:-./sigil-data}

"$bin/sigild" --data-dir "$data" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  "$bin/sigil" directory >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== append: the signed receipt, exactly as written to $data/chains/demo.jsonl"
echo '{"action_type":"read","target":"https://api.example.com/v1/orders","verdict":"allow","transport":"https","method":"GET","principal":"org:demo","actor":"agent:demo"}' \
  | "$bin/sigil" append --chain demo

# The root key is what a verifier pins: record it once, when the daemon is
# set up, and keep it (here it is read from the running daemon).
root=$("$bin/sigil" directory --root-key)

echo
echo "== verify: the chain, pinned to the root key $root, against the daemon's key directory"
"$bin/sigil" verify chain "$data/chains/demo.jsonl" --key "$root" \
  --directory http://127.0.0.1:7701/.well-known/http-message-signatures-directory

# The receipt log signs a checkpoint within a second of the append.
sleep 1.5
echo
echo "== and against the receipt log: the log's receipts of chain demo are the file's"
"$bin/sigil" verify chain "$data/chains/demo.jsonl" --key "$root" --log http://127.0.0.1:7701/log

if [ -x .venv/bin/pipelock-verify ]; then
  echo
  echo "== and with Pipelock's own verifier (installed by scripts/test.sh)"
  .venv/bin/pipelock-verify "$data/chains/demo.jsonl" --key "$root" --session-id demo
fi
