#!/usr/bin/env python3
"""Example app: receive ChronosHub events from chronoshub-sidecar over gRPC.

Opens StreamEvents on a named subscription with an event-type filter, prints
one JSON line per event on stdout ({"id","type","attempt","payload","action"})
and settles each event with AckEvents while the stream is open: it
acknowledges what it handled and rejects, with a redelivery delay, what it
cannot handle (a payload that is not a JSON object, or a type named by
--reject-type), so that the sidecar offers it again later. When the stream
breaks or ends (the sidecar restarting, for example) it reconnects with
exponential backoff and full jitter. SIGINT or SIGTERM stops it cleanly.

Flags win over the environment: --addr (CHRONOSHUB_GRPC_ADDR, default
127.0.0.1:50051), --subscription (CHRONOSHUB_SUBSCRIPTION, default
"example-python"), --types (CHRONOSHUB_EVENT_TYPES, comma-separated, default
"manuscript.>"). CHRONOSHUB_API_TOKEN, when set, is sent as a bearer token.

Tracing: each event carries its W3C trace context (event.traceparent: the
sidecar's span that delivered it, or ChronosHub's when the sidecar exports no
spans; empty when there is none). The consumer prints it, and sends it on as
the traceparent metadata of the calls it makes for that event (AckEvents here;
SendEvent in a real app), so that the sidecar's spans of those calls join the
event's trace. An app that uses the OpenTelemetry SDK would instead start its
span with the extracted context as the parent
(TraceContextTextMapPropagator().extract({"traceparent": ...})) and let its
gRPC instrumentation send the span's own traceparent.

    /usr/bin/python3 examples/python/consumer.py --subscription my-app
"""

import argparse
import json
import os
import random
import signal
import sys
import time

# The generated modules import each other as chronoshub.sidecar.v1.…
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from google.protobuf import duration_pb2  # noqa: E402

from chronoshub.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc  # noqa: E402

# Codes that reconnecting cannot fix. FAILED_PRECONDITION (another stream
# holds different filters on the subscription) clears when that stream ends.
PERMANENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNIMPLEMENTED,
}


class Stop(Exception):
    """Raised by the signal handler to leave the blocking stream read."""


class Done(Exception):
    """Raised when --max-events events were handled."""


def log(msg):
    print(f"consumer: {msg}", file=sys.stderr, flush=True)


def backoff(n):
    """The wait before reconnect attempt n (0-based): 250 ms doubling to 30 s, jittered."""
    ceiling = min(0.25 * 2 ** min(n, 7), 30.0)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_traceparent(value):
    """Returns (trace_id, parent_id, flags) of a W3C traceparent, or None if it is
    not a valid version-00 value."""
    parts = value.split("-")
    if len(parts) != 4 or parts[0] != "00":
        return None
    trace_id, parent_id, flags = parts[1:]
    hexdigits = set("0123456789abcdef")
    if (len(trace_id), len(parent_id), len(flags)) != (32, 16, 2) \
            or not set(trace_id + parent_id + flags) <= hexdigits \
            or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id, parent_id, flags


def trace_metadata(event):
    """The gRPC metadata that continues the event's trace, or [] without one."""
    if not parse_traceparent(event.traceparent):
        return []
    md = [("traceparent", event.traceparent)]
    if event.tracestate:
        md.append(("tracestate", event.tracestate))
    return md


def process(event, reject_type):
    """The app's business logic. Raises ValueError for an event it cannot handle."""
    if reject_type and event.type == reject_type:
        raise ValueError(f"type {event.type} is rejected by --reject-type")
    payload = json.loads(event.payload)  # ValueError if it is not JSON
    if not isinstance(payload, dict):
        raise ValueError("payload is not a JSON object")
    return payload


class Consumer:
    def __init__(self, stub, args, metadata):
        self.stub = stub
        self.args = args
        self.metadata = metadata
        self.handled = 0

    def stream(self):
        """Reads one stream until it breaks; returns how many events it received."""
        call = self.stub.StreamEvents(
            sidecar_pb2.StreamEventsRequest(
                subscription=self.args.subscription, event_types=self.args.types
            ),
            metadata=self.metadata,
        )
        received = 0
        try:
            log(f"streaming subscription {self.args.subscription!r}, types {self.args.types}")
            for resp in call:
                received += 1
                self.handle(resp.event)
                self.handled += 1
                if self.args.max_events and self.handled >= self.args.max_events:
                    raise Done()
            return received, None
        except grpc.RpcError as err:
            return received, err
        finally:
            call.cancel()  # ends the stream; the sidecar offers unsettled events again

    def handle(self, event):
        # The sidecar delivers at least once: a real app de-duplicates on event.id.
        action, shown = "ack", None
        try:
            shown = process(event, self.args.reject_type)
        except ValueError as err:
            action = "reject"
            log(f"rejecting {event.id} ({event.type}, attempt {event.attempt}): {err}")
        if shown is None:
            try:
                shown = json.loads(event.payload)
            except ValueError:
                shown = event.payload.decode("utf-8", "replace")
        print(
            json.dumps(
                {"id": event.id, "type": event.type, "attempt": event.attempt,
                 "payload": shown, "action": action, "traceparent": event.traceparent}
            ),
            flush=True,
        )
        req = sidecar_pb2.AckEventsRequest(subscription=self.args.subscription, event_ids=[event.id])
        if action == "reject":
            req.reject = True
            req.redeliver_delay.CopyFrom(duration_pb2.Duration(seconds=self.args.redeliver_delay))
        metadata = list(self.metadata or []) + trace_metadata(event)
        resp = self.stub.AckEvents(req, timeout=10, metadata=metadata or None)
        if resp.unknown_event_ids:
            log(f"{event.id} was no longer held by this stream; it will come again")


def main(argv):
    env = os.environ.get
    p = argparse.ArgumentParser(description="Receive events from chronoshub-sidecar.")
    p.add_argument("--addr", default=env("CHRONOSHUB_GRPC_ADDR") or "127.0.0.1:50051")
    p.add_argument("--subscription", default=env("CHRONOSHUB_SUBSCRIPTION") or "example-python")
    p.add_argument("--types", default=env("CHRONOSHUB_EVENT_TYPES") or "manuscript.>",
                   help="comma-separated event-type filters; empty for all")
    p.add_argument("--reject-type", default="", help="reject every event of this type")
    p.add_argument("--redeliver-delay", type=int, default=10,
                   help="seconds before the sidecar offers a rejected event again")
    p.add_argument("--max-events", type=int, default=0, help="exit after this many events")
    args = p.parse_args(argv)
    args.types = [t.strip() for t in args.types.split(",") if t.strip()]

    def stop(signum, frame):
        raise Stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    token = env("CHRONOSHUB_API_TOKEN")
    metadata = [("authorization", f"Bearer {token}")] if token else None
    channel = grpc.insecure_channel(args.addr)
    consumer = Consumer(sidecar_pb2_grpc.EventServiceStub(channel), args, metadata)
    failures = 0
    try:
        while True:
            received, err = consumer.stream()
            if err is not None and err.code() in PERMANENT:
                log(f"stream {args.subscription!r}: {err.code().name}: {err.details()}")
                return 1
            if received:
                failures = 0
            wait = backoff(failures)
            failures += 1
            why = f"{err.code().name}: {err.details()}" if err is not None else "stream ended"
            log(f"{why}; reconnecting in {wait:.2f}s")
            time.sleep(wait)
    except Done:
        return 0
    except Stop:
        log("stopping")
        return 0
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
