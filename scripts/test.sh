#!/usr/bin/env bash
# Installs what sigil's tests need on a Debian machine and runs them all:
# SoftHSM2 (PKCS#11), swtpm and tpm2-tss (TPM 2.0), libusb (YubiHSM 2 over
# USB, built but not run: no device here), and Pipelock's public
# verifier `pipelock-verify` in a virtualenv at .venv. The YubiHSM 2 tests
# use the yubihsm crate's MockHsm and need nothing installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
for c in softhsm2-util swtpm pkg-config; do
  command -v "$c" >/dev/null 2>&1 || need_apt=1
done
pkg-config --exists tss2-esys 2>/dev/null || need_apt=1
pkg-config --exists libusb-1.0 2>/dev/null || need_apt=1
if [ "$need_apt" = 1 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    softhsm2 swtpm swtpm-tools libtss2-dev tpm2-tools libusb-1.0-0-dev pkg-config >/dev/null
fi

# The Python example's stubs refuse to import without grpcio and protobuf at
# least as new as they were generated for, so importing them checks for both.
if [ ! -x .venv/bin/pipelock-verify ] || ! .venv/bin/python -c "import prometheus_client" 2>/dev/null \
  || ! (cd examples/python && ../../.venv/bin/python -c "import sigil.v1.sigil_pb2_grpc") 2>/dev/null; then
  python3 -m venv .venv
  # -c: take grpcio and protobuf at the example's pins, without grpcio-tools.
  .venv/bin/pip install --quiet --disable-pip-version-check pipelock-verify==0.4.1 prometheus-client==0.21.1 \
    -c examples/python/requirements.txt grpcio protobuf
fi

cargo fmt --all -- --check
# Every backend is a cargo feature; the tests build and run them all.
cargo build --workspace --bins --locked --all-features
cargo clippy --workspace --all-targets --locked --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --all-features
# The fuzz targets are a project of their own (scripts/fuzz.sh runs them):
# they must keep compiling as the code they fuzz changes.
cargo check --manifest-path fuzz/Cargo.toml --bins --locked
cargo test --workspace --locked --all-features "$@"
