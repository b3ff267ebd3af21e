"""Verify webhook signatures with ChronosHub's reference Python snippet, unchanged.

Reads a JSON array of requests on stdin, each
{"body_base64", "secret", "event_type", "event_id", "timestamp", "signature"},
decodes each body as UTF-8 (step 1 of the reference: "Read the raw request body as a UTF-8
string") and prints a JSON array of booleans, one per request.
"""
import base64
import hashlib
import hmac
import json
import sys


# Copied from ChronosHub's "Outbound Events" page, Example (Python).
def verify_signature(payload: str, secret: str, event_type: str, event_id: str, timestamp: str, received_signature: str) -> bool:
    message = f"{len(payload)}:{payload}|{event_type}|{event_id}|{timestamp}"
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received_signature.removeprefix("sha256="))


def main() -> None:
    results = []
    for r in json.load(sys.stdin):
        payload = base64.b64decode(r["body_base64"]).decode("utf-8")
        results.append(verify_signature(payload, r["secret"], r["event_type"], r["event_id"], r["timestamp"], r["signature"]))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
