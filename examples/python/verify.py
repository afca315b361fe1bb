#!/usr/bin/env python3
"""Verifies a chain file with Pipelock's own verifier, pipelock-verify.

Reads sigild's key directory over HTTP, takes the chain key's root (its
first version: the key a verifier pins; in production, record it once at
set-up rather than reading it back) and runs

    pipelock-verify FILE --key HEX --session-id CHAIN

printing its output and exiting with its code (0 valid, 1 invalid).

    python verify.py sigil-data/chains/python-demo.jsonl --chain python-demo
"""

import argparse
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

WELL_KNOWN = "/.well-known/http-message-signatures-directory"


def pipelock_verify() -> str:
    # pip puts the CLI next to the interpreter of its virtualenv; a venv
    # need not be activated for that, so look there before PATH.
    beside = Path(sys.executable).parent / "pipelock-verify"
    found = str(beside) if beside.exists() else shutil.which("pipelock-verify")
    if not found:
        sys.exit("pipelock-verify not found: pip install pipelock-verify==0.4.1")
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", help="chain file, <data-dir>/chains/CHAIN.jsonl")
    p.add_argument("--directory", default="http://127.0.0.1:7701" + WELL_KNOWN, help="directory URL")
    p.add_argument("--chain", default="python-demo", help="chain name (the receipts' session id)")
    args = p.parse_args()

    with urllib.request.urlopen(args.directory, timeout=10) as resp:
        directory = json.load(resp)
    # The root is the chain key's first version ("purpose": "chain"; digest
    # keys sign caller-chosen bytes and vouch for no receipt). After a
    # rotation the boundaries also need --rotation-endorsement files
    # (`sigil chain endorsements`), or use `sigil verify chain --directory`.
    chain_keys = [k for k in directory["keys"] if k.get("purpose") == "chain"]
    key = min(chain_keys, key=lambda k: k["version"])["public_key"]
    with open(args.file, encoding="utf-8") as f:
        genesis = json.loads(f.readline())
    if genesis.get("signer_key") != key:
        print(f"{args.file}: genesis not signed by the chain key's root", file=sys.stderr)
        return 1

    cmd = [pipelock_verify(), args.file, "--key", key, "--session-id", args.chain]
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
