#!/usr/bin/env python3
"""Writes vectors.json: the test inputs and their signatures as ChronosHub's
Python reference computes them (payload length = len(str), i.e. code points).

gen_node.js then adds the C# reference's signatures. See README.md.
This file deliberately shares no code with the Go package under test.
"""
import base64
import hashlib
import hmac
import json
import os


def python_reference(payload: str, secret: str, event_type: str, event_id: str, timestamp: str) -> str:
    # Exactly the message construction from ChronosHub's "Example (Python)".
    message = f"{len(payload)}:{payload}|{event_type}|{event_id}|{timestamp}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


SECRET = "whsec_test_5f2b7c1e9a"
EVENT_TYPE = "manuscript.submitted"
EVENT_ID = "d4e5f6a7-b8c9-0123-4567-89abcdef0123"
TIMESTAMP = "1740000000"


def large_payload() -> str:
    # ~64 KiB of JSON mixing ASCII, BMP and non-BMP characters, so the two
    # length conventions differ by a lot.
    items = []
    i = 0
    while sum(len(x.encode()) for x in items) < 64 * 1024:
        items.append(json.dumps({"i": i, "title": f"Étude {i} of 𝔸-modules 🧬 in 東京"}, ensure_ascii=False))
        i += 1
    return "[" + ",".join(items) + "]"


CASES = [
    # (name, payload, overrides)
    ("ascii", '{"manuscriptId":"MS-2026-001","title":"Example Manuscript","submittedAt":"2026-02-26T12:00:00Z"}', {}),
    ("latin_accents", '{"title":"Café résumé: niño über façade"}', {}),
    ("cjk", '{"title":"量子もつれの研究","journal":"科学"}', {}),
    ("emoji", '{"title":"Celebrating 😀 results","tag":"🧬"}', {}),
    ("math_alphanumerics", '{"title":"Cohomology of 𝔸𝕓𝒞 over 𝔽_q"}', {}),
    ("combining_characters", '{"author":"Jose\u0301 Mu\u0303noz","note":"e\u0301\u0323"}', {}),
    ("separators_in_payload", '{"a":"x|y:z","b":"sha256=deadbeef","c":"12:|manuscript.submitted|"}', {}),
    ("empty_object", "{}", {}),
    ("large_64k", large_payload(), {}),
    ("multiline_pretty", json.dumps({"manuscriptId": "MS-2026-002", "title": "Ünïcödé 🧪 𝒞ategories",
                                     "authors": ["Zoë", "李雷"]}, indent=2, ensure_ascii=False) + "\n", {}),
    ("non_ascii_secret", '{"manuscriptId":"MS-2026-003"}', {"secret": "sécret-🔑-キー"}),
    ("non_ascii_secret_non_bmp_payload", '{"title":"𝔸 😀"}', {"secret": "ключ-𝔅"}),
    ("other_event", '{"decision":"accepted"}', {"event_type": "manuscript.decision_made", "event_id": "0b6f3c1e-0000-4000-8000-000000000001", "timestamp": "1767225600"}),
    ("bom_and_replacement_char", '\ufeff{"x":"\ufffd"}', {}),
]


def main() -> None:
    vectors = []
    for name, payload, over in CASES:
        v = {
            "name": name,
            "secret": over.get("secret", SECRET),
            "event_type": over.get("event_type", EVENT_TYPE),
            "event_id": over.get("event_id", EVENT_ID),
            "timestamp": over.get("timestamp", TIMESTAMP),
            # base64 of the exact UTF-8 bytes, so no editor or tool normalises them.
            "payload": base64.b64encode(payload.encode("utf-8")).decode("ascii"),
            "python_length": len(payload),
            "python_signature": "sha256=" + python_reference(
                payload, over.get("secret", SECRET), over.get("event_type", EVENT_TYPE),
                over.get("event_id", EVENT_ID), over.get("timestamp", TIMESTAMP)),
        }
        vectors.append(v)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
    with open(out, "w", encoding="ascii") as f:
        json.dump(vectors, f, indent=2, ensure_ascii=True)
        f.write("\n")


if __name__ == "__main__":
    main()
