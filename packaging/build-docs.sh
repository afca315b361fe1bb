#!/usr/bin/env bash
# Generates the man pages and shell completions of the built binaries into a
# directory laid out like /usr/local/share (or /usr/share) to ship with them:
#   man/man1/sigil.1 sigil-*.1 sigild.1
#   bash-completion/completions/sigil
#   zsh/site-functions/_sigil
#   fish/vendor_completions.d/sigil.fish
# They come from the clap definitions (`sigil man`, `sigil completions`,
# `sigild --man`), so they always match the flags of the binaries given.
#
# Usage: packaging/build-docs.sh [BIN_DIR [OUT_DIR]]
#   BIN_DIR defaults to target/release, OUT_DIR to target/share.
# packaging/Containerfile runs it and copies OUT_DIR to /usr/local/share.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/release}
out=${2:-target/share}
for b in sigil sigild; do
  [ -x "$bin/$b" ] || { echo "build-docs: $bin/$b is missing: run cargo build --release --bins" >&2; exit 1; }
done

mkdir -p "$out/man/man1" "$out/bash-completion/completions" \
  "$out/zsh/site-functions" "$out/fish/vendor_completions.d"

"$bin/sigil" man --out "$out/man/man1" >/dev/null
"$bin/sigild" --man >"$out/man/man1/sigild.1"
"$bin/sigil" completions bash >"$out/bash-completion/completions/sigil"
"$bin/sigil" completions zsh >"$out/zsh/site-functions/_sigil"
"$bin/sigil" completions fish >"$out/fish/vendor_completions.d/sigil.fish"

echo "build-docs: wrote $(find "$out" -type f | wc -l) files under $out"
