#!/usr/bin/env bash
# Installs what sigil's tests need on a Debian machine and runs them all:
# SoftHSM2 (PKCS#11), swtpm and tpm2-tss (TPM 2.0), and Pipelock's public
# verifier `pipelock-verify` in a virtualenv at .venv. The YubiHSM 2 tests
# use the yubihsm crate's MockHsm and need nothing installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
for c in softhsm2-util swtpm pkg-config; do
  command -v "$c" >/dev/null 2>&1 || need_apt=1
done
pkg-config --exists tss2-esys 2>/dev/null || need_apt=1
if [ "$need_apt" = 1 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    softhsm2 swtpm swtpm-tools libtss2-dev tpm2-tools pkg-config >/dev/null
fi

if [ ! -x .venv/bin/pipelock-verify ] || ! .venv/bin/python -c "import prometheus_client" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check pipelock-verify==0.4.1 prometheus-client==0.21.1
fi

cargo fmt --all -- --check
cargo build --workspace --bins --locked
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
