#!/usr/bin/env python3
"""Example app: send one event to ChronosHub through chronoshub-sidecar.

Calls SendEvent with an idempotency key (--idempotency-key, or a new UUID),
prints ChronosHub's event id on stdout, and handles each error class by its
gRPC code:

- INVALID_ARGUMENT: the event is wrong; fix it, retrying cannot help.
- FAILED_PRECONDITION: an operator problem in the sidecar (ChronosHub refused
  its API key, or the account is inactive); not the app's to fix.
- ALREADY_EXISTS: the idempotency key was used for a different event.
- UNAVAILABLE, DEADLINE_EXCEEDED: transient; retried with exponential backoff
  and the SAME idempotency key, so that a retry of an event ChronosHub did
  accept returns the first result instead of sending it twice.

--addr (CHRONOSHUB_GRPC_ADDR, default 127.0.0.1:50051) is the sidecar;
CHRONOSHUB_API_TOKEN, when set, is sent as a bearer token.

    /usr/bin/python3 examples/python/sender.py --payload '{"manuscriptId":"M-1"}'
"""

import argparse
import os
import random
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402

from chronoshub.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc  # noqa: E402

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def fail(msg):
    print(f"sender: {msg}", file=sys.stderr, flush=True)
    return 1


def main(argv):
    env = os.environ.get
    p = argparse.ArgumentParser(description="Send one event to ChronosHub through chronoshub-sidecar.")
    p.add_argument("--addr", default=env("CHRONOSHUB_GRPC_ADDR") or "127.0.0.1:50051")
    p.add_argument("--type", default="manuscript.submitted")
    p.add_argument("--payload", default='{"manuscriptId":"M-1","title":"Example"}',
                   help="the event as a JSON document")
    p.add_argument("--idempotency-key", default="", help="empty means a new UUID")
    p.add_argument("--attempts", type=int, default=5, help="attempts for transient errors")
    p.add_argument("--timeout", type=float, default=15.0, help="deadline of each attempt, seconds")
    args = p.parse_args(argv)
    key = args.idempotency_key or str(uuid.uuid4())

    token = env("CHRONOSHUB_API_TOKEN")
    metadata = [("authorization", f"Bearer {token}")] if token else None
    req = sidecar_pb2.SendEventRequest(type=args.type, payload=args.payload.encode(), idempotency_key=key)
    with grpc.insecure_channel(args.addr) as channel:
        stub = sidecar_pb2_grpc.EventServiceStub(channel)
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = stub.SendEvent(req, timeout=args.timeout, metadata=metadata)
            except grpc.RpcError as err:
                code, detail = err.code(), f"{err.code().name}: {err.details()}"
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    return fail(f"the event is invalid; fix it, retrying will not help: {detail}")
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    return fail("the sidecar cannot send (an operator must fix its credentials "
                                f"or the ChronosHub account): {detail}")
                if code == grpc.StatusCode.ALREADY_EXISTS:
                    return fail(f"idempotency key {key!r} was already used for a different event: {detail}")
                if code not in RETRYABLE:
                    return fail(f"send: {detail}")
                if attempt >= args.attempts:
                    return fail(f"gave up after {attempt} attempts (idempotency key {key}, "
                                f"safe to retry later): {detail}")
                ceiling = min(0.5 * 2 ** (attempt - 1), 10.0)
                wait = ceiling / 2 + random.uniform(0, ceiling / 2)
                print(f"sender: attempt {attempt}: {detail}; retrying in {wait:.2f}s with the same "
                      "idempotency key", file=sys.stderr, flush=True)
                time.sleep(wait)
                continue
            print(f"sender: {args.type} accepted (idempotency key {resp.idempotency_key})",
                  file=sys.stderr, flush=True)
            print(resp.event_id, flush=True)
            return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
