"""Schemathesis hooks for scripts/fuzz: make the fuzzer send back what the server issued.

Three request values are valid only relative to what the server has said, which a schema
cannot express, so data generated from the schema alone is refused (422) by design:

- ``X-Min-Position``: a position past the newest event is refused (there is nothing to wait
  for). A real client sends a position a command answered, so the hook lowers a generated one
  to the newest position seen in an answer.
- ``Idempotency-Key``: reusing a key with another request is refused (the IETF draft's 422).
  A real client makes a fresh key per request, so the hook does too.
- ``cursor``: a cursor must be one the API issued. The hook keeps cursors seen in answers
  and drops any other.
- A bounty's ``deadline`` must be in the future, which moves: the hook moves a past one a
  month ahead.
- ``If-Match``: a real client sends back a version it was given, or none. Schemathesis also
  fills headers of positive cases with values it saw elsewhere (``0``), which the document's
  pattern does not admit; the hook drops such a value from a positive case. A well-formed
  version the aggregate is not at is answered 412, which schemathesis.toml expects.
- A task's ``payload`` and ``result`` are any JSON in the schema, but no string or key in them
  may hold U+0000 (the store cannot hold it; the document says so in the fields'
  descriptions, and the server answers 422 naming the field). A recursive schema would say
  it, but the typed client's generator cannot type one. The hook drops U+0000 from such a
  document in a positive case.

Only values that satisfy the document are replaced; the negative phase's malformed ones
(not integers, too long, ...) still reach the server as generated.
"""

import json
import re
import uuid
from datetime import datetime, timedelta, timezone

import schemathesis

# The document's pattern for Idempotency-Key (src/http/openapi/params.rs).
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
# And for If-Match (the same file).
IF_MATCH = re.compile(r'^(\*|(W/)?"[0-9]{1,18}"([ \t]*,[ \t]*(W/)?"[0-9]{1,18}")*)$')


def positive(case):
    mode = getattr(getattr(getattr(case, "meta", None), "generation", None), "mode", None)
    return mode is not None and mode.is_positive

def without_nul(value):
    """`value` with U+0000 taken out of every string and key."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    if isinstance(value, dict):
        return {k.replace("\x00", ""): without_nul(v) for k, v in value.items()}
    return value


newest_position = 0
issued_cursors = set()


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        lower = name.lower()
        value = headers[name]
        if lower == "x-min-position" and isinstance(value, str) and value.isdigit():
            headers[name] = str(min(int(value), newest_position))
        elif lower == "idempotency-key" and isinstance(value, str) and IDEMPOTENCY_KEY.match(value):
            headers[name] = str(uuid.uuid4())
        elif lower == "if-match" and positive(case) and not IF_MATCH.fullmatch(str(value)):
            del headers[name]
    body = case.body
    if isinstance(body, dict) and positive(case):
        for field in ("payload", "result"):
            if field in body:
                body[field] = without_nul(body[field])
    if isinstance(body, dict) and isinstance(body.get("deadline"), str):
        try:
            deadline = datetime.fromisoformat(body["deadline"].replace("Z", "+00:00"))
        except ValueError:
            deadline = None
        now = datetime.now(timezone.utc)
        if deadline is not None and deadline.tzinfo is not None and deadline <= now:
            body["deadline"] = (now + timedelta(days=30)).isoformat()
    query = case.query or {}
    cursor = query.get("cursor")
    if isinstance(cursor, str) and cursor and cursor not in issued_cursors:
        del query["cursor"]


@schemathesis.hook
def after_call(context, case, response):
    global newest_position
    if "json" not in response.headers.get("content-type", [""])[0]:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    position = body.get("position")
    if isinstance(position, int) and position > newest_position:
        newest_position = position
    cursor = body.get("next_cursor")
    if isinstance(cursor, str):
        issued_cursors.add(cursor)
