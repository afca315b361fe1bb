#!/usr/bin/env bash
# Runs `sigil bench` against every backend that runs on this machine:
# software, PKCS#11 on SoftHSM2 (a token made in a temp dir) and TPM 2.0 on
# swtpm. Each run measures the raw signing rate first, in the same run.
# Needs what scripts/test.sh installs. Output: Markdown on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --quiet
bin=$PWD/target/release
receipts=${RECEIPTS:-30000}
tmp=$(mktemp -d)
cleanup() { [ -n "${tpm_pid:-}" ] && kill "$tpm_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# `scripts/bench.sh log` runs only the receipt log comparison.
if [ "${1:-all}" = all ]; then
echo "## software"
"$bin/sigil" bench --receipts "$receipts"

echo
echo "## pkcs11 (SoftHSM2, 2 sessions)"
mkdir -p "$tmp/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$tmp/tokens" >"$tmp/softhsm2.conf"
export SOFTHSM2_CONF=$tmp/softhsm2.conf
softhsm2-util --init-token --free --label bench --so-pin 0000 --pin 1234 >/dev/null
printf 1234 >"$tmp/pin" && chmod 600 "$tmp/pin"
cat >"$tmp/pkcs11.toml" <<TOML
[backend]
kind = "pkcs11"
uri = "pkcs11:token=bench?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:$tmp/pin"
sessions = 2
TOML
"$bin/sigil" bench --receipts "$receipts" --sigild-arg=--config --sigild-arg="$tmp/pkcs11.toml"

echo
echo "## tpm (swtpm, seed sealed, signing in process memory)"
port=$((20000 + RANDOM % 20000))
mkdir -p "$tmp/tpm"
swtpm socket --tpm2 --server type=tcp,port=$port,bindaddr=127.0.0.1 \
  --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
  --tpmstate dir="$tmp/tpm" --flags not-need-init,startup-clear &
tpm_pid=$!
sleep 1
printf '[backend]\nkind = "tpm"\ntcti = "swtpm:host=127.0.0.1,port=%s"\n' "$port" >"$tmp/tpm.toml"
TSS2_LOG=all+none "$bin/sigil" bench --receipts "$receipts" --sigild-arg=--config --sigild-arg="$tmp/tpm.toml"
fi

echo
echo "## receipt log (software): streamed rate with the log off and on, alternately"
# Same binaries, same machine minutes: the log's cost is the ratio of the
# two columns, round by round (the machine's noise is about ±20%).
printf '[log]\nenabled = false\n' >"$tmp/nolog.toml"
echo
echo "| round | chains | log off (appends/s) | log on (appends/s) | on / off |"
echo "|---|---|---|---|---|"
for round in $(seq "${LOG_ROUNDS:-3}"); do
  off=$("$bin/sigil" bench --receipts "$receipts" --sigild-arg=--config --sigild-arg="$tmp/nolog.toml" | awk -F'|' '$2 ~ /stream/ {print $3 $6}')
  on=$("$bin/sigil" bench --receipts "$receipts" | awk -F'|' '$2 ~ /stream/ {print $3 $6}')
  paste <(echo "$off") <(echo "$on") | while read -r chains a _ b; do
    echo "| $round | $chains | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}') |"
  done
done
