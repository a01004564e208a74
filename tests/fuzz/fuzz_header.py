"""Fuzz target: the v1 header parser (envelope.format).

format.py promises FormatError and nothing else.  Beyond not crashing, a
header that parses must serialize back to exactly the bytes it came from:
the header MAC covers the bytes as read, so two encodings of one header would
be two valid files for one set of fields.
"""

from __future__ import annotations

import io
import sys

from envelope import format as fmt
from envelope.exceptions import FormatError

NAME = "header"
ALLOWED = (FormatError,)
MAX_LEN = 8192


def check(data: bytes) -> None:
    try:
        header, raw = fmt.read_header(io.BytesIO(data))
    except FormatError:
        header, raw = None, b""
    if header is not None:
        # The stream entry point reads exactly the header and leaves what follows.
        assert data.startswith(raw) and fmt.parse(raw) == header, "read_header and parse disagree"
        assert header.encode() == raw, "a parsed header does not re-encode to its own bytes"
        assert header.size == len(raw)
    parsed = fmt.parse(data)
    assert parsed == header and raw == data, "parse accepted what read_header refused"


def seeds() -> list[bytes]:
    from harness import vectors

    return [bytes.fromhex(v["ciphertext"])[: v.get("header_size") or MAX_LEN] for v in vectors()]


if __name__ == "__main__":
    import harness

    harness.main(sys.modules[__name__])
