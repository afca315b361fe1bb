#!/usr/bin/env python3
"""A Python mediator telling sigild what an agent did.

Appends one record with the unary Append call, then a few more over one
AppendStream (the way a busy mediator would, without a round trip each), and
prints every signed receipt as one JSON line: the receipt exactly as sigild
returned it, which is byte-for-byte the line in <data-dir>/chains/CHAIN.jsonl.

    python producer.py --endpoint 127.0.0.1:7700 --chain python-demo
"""

import argparse
import json
import sys

import grpc

# The stubs generated from proto/proto/sigil/v1/sigil.proto (generate.sh);
# Python finds them because they sit next to this script.
from sigil.v1 import sigil_pb2, sigil_pb2_grpc


def record(i: int) -> str:
    # action_record fields in Pipelock's names. action_type, target, verdict
    # and transport are required; sigild fills in version, timestamp, the
    # chain fields and run_nonce, and a UUIDv7 action_id since we give none.
    return json.dumps({
        "action_type": "write",
        "target": f"https://api.example.com/v1/orders/{i}",
        "verdict": "allow",
        "transport": "https",
        "method": "POST",
        "principal": "org:demo",
        "actor": "agent:python-demo",
    })


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", default="127.0.0.1:7700", help="sigild gRPC host:port")
    p.add_argument("--chain", default="python-demo", help="chain name")
    p.add_argument("--stream", type=int, default=3, help="records to send over AppendStream")
    args = p.parse_args()

    # Plaintext: sigild only listens without TLS on loopback. With mTLS use
    # grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(ca, key, cert)).
    with grpc.insecure_channel(args.endpoint) as channel:
        stub = sigil_pb2_grpc.ReceiptsStub(channel)

        # Unary: the reply comes once the receipt is signed and on disk.
        # Bad input raises grpc.RpcError (INVALID_ARGUMENT, naming the field).
        request = sigil_pb2.AppendRequest(chain=args.chain, record_json=record(0))
        reply = stub.Append(request, timeout=30)
        print(reply.receipt_json, flush=True)

        # Streaming: one reply per request, in request order; correlation_id
        # is echoed so replies can be matched. A bad record gets an error
        # reply and the stream goes on.
        requests = (
            sigil_pb2.AppendRequest(chain=args.chain, record_json=record(i), correlation_id=i)
            for i in range(1, args.stream + 1)
        )
        failed = 0
        for r in stub.AppendStream(requests, timeout=30):
            if r.HasField("error"):
                err = r.error  # code is a google.rpc.Code number, e.g. 3 INVALID_ARGUMENT
                print(f"record {r.correlation_id}: code {err.code}: {err.message}", file=sys.stderr)
                failed += 1
            else:
                print(r.receipt.receipt_json, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as e:
        print(f"sigild: {e.code().name}: {e.details()}", file=sys.stderr)
        sys.exit(1)
