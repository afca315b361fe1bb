#!/usr/bin/env bash
# Regenerates the checked-in Python stubs (sigil/v1/sigil_pb2*.py) from the
# proto with grpcio-tools, pinned in requirements.txt. Run it after changing
# proto/proto/sigil/v1/sigil.proto; PYTHON picks the interpreter (default:
# the repository's .venv, where `pip install -r requirements.txt` put it).
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-../../.venv/bin/python}
"$python" -m grpc_tools.protoc -I ../../proto/proto \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  ../../proto/proto/sigil/v1/sigil.proto
# Regular packages, so `import sigil.v1.sigil_pb2` works from this directory.
touch sigil/__init__.py sigil/v1/__init__.py
