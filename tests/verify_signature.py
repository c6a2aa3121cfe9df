#!/usr/bin/env python3
"""Independent verifier of webhook signatures, for herald's integration tests.

It checks herald's signing code from the receiving side and shares no code
with herald: the Standard Webhooks scheme is verified by the reference
library (PyPI `standardwebhooks`, pinned in tests/requirements.txt), the plain
scheme by Python's standard library.

Reads one JSON object from stdin, either

  {"scheme": "standard", "secret": "whsec_<base64>",
   "headers": {"webhook-id": "...", "webhook-timestamp": "...",
               "webhook-signature": "v1,<b64> v1,<b64>"},
   "body": "<exact body text>"}

or

  {"scheme": "hmac", "secret": "<raw secret string>",
   "encoding": "hex" | "base64", "signature": "<header value>",
   "body": "<exact body text>"}

Exit status: 0 and `ok` on stdout if the signature is valid; 1 and the reason
on stderr if it is not; 2 and the reason on stderr if the input is malformed.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import sys

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_MALFORMED = 2


class Malformed(Exception):
    """The input itself is unusable (exit 2)."""


class Invalid(Exception):
    """The input is well-formed but the signature does not verify (exit 1)."""


def _str_field(obj, name):
    value = obj.get(name)
    if not isinstance(value, str):
        raise Malformed(f"field {name!r} must be a string")
    return value


def _body_bytes(obj):
    body = _str_field(obj, "body")
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Malformed(f"body is not valid UTF-8 text: {exc}") from None


def verify_standard(obj):
    try:
        from standardwebhooks import Webhook, WebhookVerificationError
    except ImportError:
        raise Malformed(
            "the `standardwebhooks` package is not installed "
            "(pip install -r tests/requirements.txt)"
        ) from None

    secret = _str_field(obj, "secret")
    headers = obj.get("headers")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise Malformed("field 'headers' must be an object of string values")
    body = _body_bytes(obj)

    try:
        wh = Webhook(secret)
    except Exception as exc:  # empty secret, undecodable base64
        raise Malformed(f"unusable Standard Webhooks secret: {exc!r}") from None

    # The library parses webhook-timestamp as a float and re-renders it as
    # integer seconds before signing, so it would accept e.g. "1700000000.0".
    # The spec wants integer seconds, signed exactly as sent: insist on that.
    lower = {k.lower(): v for k, v in headers.items()}
    ts = lower.get("webhook-timestamp")
    if ts and not re.fullmatch(r"[0-9]+", ts):
        raise Invalid(f"webhook-timestamp {ts!r} is not integer seconds")

    # The library splits webhook-signature on single spaces and stops at the
    # first match, so a garbled entry after a matching one goes unnoticed.
    # Insist on the spec's shape for every entry: "version,signature",
    # single-space separated, and for v1 a padded base64 32-byte HMAC.
    sig_header = lower.get("webhook-signature")
    if sig_header:
        for entry in sig_header.split(" "):
            version, sep, sig = entry.partition(",")
            if not sep or not version or not sig or "," in sig:
                raise Invalid(
                    f"malformed webhook-signature entry {entry!r} in {sig_header!r}"
                )
            if version == "v1":
                try:
                    raw = base64.b64decode(sig, validate=True)
                except binascii.Error:
                    raw = b""
                if len(raw) != 32:
                    raise Invalid(
                        f"webhook-signature v1 entry {sig!r} is not padded base64 of 32 bytes"
                    )

    try:
        # json_parse=False: verify only, don't require the body to be JSON.
        wh.verify(body, headers, json_parse=False)
    except WebhookVerificationError as exc:
        raise Invalid(f"standard webhook verification failed: {exc}") from None
    except (ValueError, binascii.Error, TypeError) as exc:
        # A webhook-signature entry that is not exactly "version,base64"
        # (e.g. a doubled space or a missing comma) or bad base64.
        raise Invalid(
            f"malformed webhook-signature header {lower.get('webhook-signature')!r}: {exc}"
        ) from None


def verify_hmac(obj):
    secret = _str_field(obj, "secret")
    encoding = _str_field(obj, "encoding")
    signature = _str_field(obj, "signature")
    body = _body_bytes(obj)
    if encoding not in ("hex", "base64"):
        raise Malformed(f"encoding must be 'hex' or 'base64', not {encoding!r}")
    try:
        key = secret.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Malformed(f"secret is not valid UTF-8 text: {exc}") from None

    digest = hmac.new(key, body, hashlib.sha256).digest()
    if encoding == "hex":
        expected = digest.hex()  # lower case
    else:
        expected = base64.b64encode(digest).decode("ascii")  # standard, padded
    try:
        given = signature.encode("utf-8")
    except UnicodeEncodeError:
        given = b""
    if not hmac.compare_digest(expected.encode("ascii"), given):
        raise Invalid(
            f"hmac-sha256 ({encoding}) mismatch: expected {expected!r}, got {signature!r}"
        )


def main():
    try:
        try:
            obj = json.loads(sys.stdin.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise Malformed(f"stdin is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise Malformed("stdin must hold one JSON object")
        scheme = obj.get("scheme")
        if scheme == "standard":
            verify_standard(obj)
        elif scheme == "hmac":
            verify_hmac(obj)
        else:
            raise Malformed(f"scheme must be 'standard' or 'hmac', not {scheme!r}")
    except Malformed as exc:
        print(f"malformed input: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    except Invalid as exc:
        print(f"invalid signature: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print("ok")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
