#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 20), starting
# from the seeds committed in fuzz/corpus/<target>/ and the inputs of past
# crashes in fuzz/regressions/<target>/, and fails if any target crashes (a
# panic, a failed assertion, a timeout or running out of memory). The inputs libFuzzer finds go to fuzz/work/<target>/ (kept
# between runs, never committed); a crashing input goes to
# fuzz/artifacts/<target>/. See fuzz/README.md.
#
#   scripts/fuzz.sh          # 20 s per target
#   scripts/fuzz.sh 600      # the longer run: 10 minutes per target
#   FUZZ_TARGETS="receipt chain_resigned" scripts/fuzz.sh 60
#   FUZZ_SANITIZER=address scripts/fuzz.sh 600   # with AddressSanitizer
#
# Needs only a stable Rust toolchain: cargo-fuzz is installed from
# crates.io if missing, and RUSTC_BOOTSTRAP=1 lets stable rustc take the
# nightly flags cargo-fuzz passes (-Zsanitizer, sanitizer coverage), plus a
# C++ compiler for libFuzzer itself (g++ or clang++).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-20}
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 64 ;;
esac
sanitizer=${FUZZ_SANITIZER:-none}
cargo_fuzz_version=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi
export RUSTC_BOOTSTRAP=1

cargo fuzz build --sanitizer "$sanitizer"
targets=${FUZZ_TARGETS:-$(cargo fuzz list)}

failed=()
for t in $targets; do
  mkdir -p "work/$t" "artifacts/$t"
  log="work/$t.log"
  # The first corpus directory is where libFuzzer writes what it finds:
  # work/, so the committed seeds in corpus/ and regressions/ stay as they
  # are. libFuzzer runs every seed first: a past crash back fails at once.
  seeds=("corpus/$t")
  [ -d "regressions/$t" ] && seeds+=("regressions/$t")
  if cargo fuzz run --sanitizer "$sanitizer" "$t" "work/$t" "${seeds[@]}" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz $t: ok, ${runs:-?} runs in ${secs}s, ${cov:-cov: ?}"
  else
    echo "fuzz $t: FAILED (log: fuzz/$log)" >&2
    grep -E 'panicked at|^SUMMARY|Test unit written to|ERROR: libFuzzer' "$log" | head -5 >&2 || true
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) found a crash: ${failed[*]}" >&2
  echo "reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer TARGET artifacts/TARGET/crash-..." >&2
  exit 1
fi
echo "fuzz: every target ran ${secs}s without a crash"
