"""The v1 header and encryption context: layout, limits, and a parser that only ever says FormatError."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envelope import context as ctx
from envelope import format as fmt
from envelope.exceptions import ContextMismatchError, FormatError, UsageError
from envelope.format import (
    HEADER_MAC_SIZE,
    MAX_CHUNK_SIZE,
    MAX_HEADER_SIZE,
    MAX_KEY_ID_SIZE,
    MAX_PROVIDER_SIZE,
    MAX_WRAPPED_KEY_SIZE,
    MAX_WRAPPED_KEYS,
    MIN_CHUNK_SIZE,
    PREFIX_SIZE,
    SUITE_AES256_GCM_HKDF_SHA512_COMMIT,
    TAG_SIZE,
    VERSION,
    Header,
    WrappedKey,
)

FILE_ID = bytes(range(32))
COMMITMENT = bytes(range(32, 64))
MAC = bytes(range(64, 96))
WK = WrappedKey("raw-aes", "0123456789abcdef0123456789abcdef", b"\x01" * 61)
#: The smallest header: no context, one wrapped key with one-byte provider, key id and blob.
SMALLEST = 15 + 4 + 32 + 2 + 1 + (1 + 1 + 2 + 1 + 2 + 1) + 32 + 32


def header(**kw) -> Header:
    fields = dict(chunk_size=MIN_CHUNK_SIZE, file_id=FILE_ID, context={"app": "billing"}, wrapped_keys=(WK,),
                  commitment=COMMITMENT, mac=MAC)
    fields.update(kw)
    return Header(**fields)  # type: ignore[arg-type]


def raw_header(*, chunk_size: int = MIN_CHUNK_SIZE, context: bytes = b"\x00\x00",
               entries: tuple[tuple[bytes, bytes, bytes], ...] = ((b"raw-aes", b"k", b"blob"),),
               count: int | None = None, magic: bytes = b"ENVELOPE", version: int = 1, suite: int = 1,
               length_delta: int = 0) -> bytes:
    """A header written field by field from the spec, so that out-of-limit values can be made."""
    body = struct.pack(">I", chunk_size) + FILE_ID + context
    body += struct.pack(">B", len(entries) if count is None else count)
    for provider, key_id, blob in entries:
        body += struct.pack(">B", len(provider)) + provider + struct.pack(">H", len(key_id)) + key_id
        body += struct.pack(">H", len(blob)) + blob
    body += COMMITMENT
    length = PREFIX_SIZE + len(body) + HEADER_MAC_SIZE + length_delta
    return magic + struct.pack(">BHI", version, suite, length) + body + MAC


def raw_context(*pairs: tuple[bytes, bytes], count: int | None = None) -> bytes:
    out = struct.pack(">H", len(pairs) if count is None else count)
    for key, value in pairs:
        out += struct.pack(">H", len(key)) + key + struct.pack(">H", len(value)) + value
    return out


# -- strategies ---------------------------------------------------------------------------------

chunk_sizes = st.integers(10, 26).map(lambda e: 1 << e)
providers = st.from_regex(r"\A[a-z0-9][a-z0-9.-]{0,20}\Z")
key_ids = st.text(min_size=1, max_size=40)
blobs = st.binary(min_size=1, max_size=100)
wrapped_keys = st.builds(WrappedKey, providers, key_ids, blobs)
contexts = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=20), max_size=8)
headers = st.builds(
    Header,
    chunk_size=chunk_sizes,
    file_id=st.binary(min_size=32, max_size=32),
    context=contexts.map(ctx.normalize),
    wrapped_keys=st.lists(wrapped_keys, min_size=1, max_size=4).map(tuple),
    commitment=st.binary(min_size=32, max_size=32),
    mac=st.binary(min_size=32, max_size=32),
    # Named: hypothesis fills a NamedTuple's defaulted fields too, with arbitrary numbers.
    version=st.just(VERSION),
    suite=st.just(SUITE_AES256_GCM_HKDF_SHA512_COMMIT),
)


# -- round trips ----------------------------------------------------------------------------------


@settings(max_examples=200)
@given(headers)
def test_header_encode_then_parse_round_trips(h):
    raw = h.encode()
    assert len(raw) == h.size
    back = fmt.parse(raw)
    assert back == h
    assert list(back.context) == sorted(back.context, key=lambda k: k.encode("utf-8"))
    assert back.encode() == raw


@settings(max_examples=50)
@given(headers, st.binary(max_size=64))
def test_read_header_reads_exactly_the_header_and_nothing_after_it(h, rest):
    stream = io.BytesIO(h.encode() + rest)
    parsed, raw = fmt.read_header(stream)
    assert parsed == h and raw == h.encode()
    assert stream.read() == rest


def test_header_layout_matches_the_spec_byte_for_byte():
    h = header(context={"b": "2", "a": "1"})
    assert h.encode() == raw_header(context=raw_context((b"a", b"1"), (b"b", b"2")),
                                    entries=((b"raw-aes", WK.key_id.encode(), WK.ciphertext),))
    raw = h.encode()
    assert raw[:8] == b"ENVELOPE" and raw[8] == 1 and raw[9:11] == b"\x00\x01"
    assert struct.unpack(">I", raw[11:15])[0] == len(raw)
    assert raw[-64:-32] == COMMITMENT and raw[-32:] == MAC
    assert h.encode_unauthenticated() == raw[:-32]


def test_the_smallest_possible_header_parses():
    raw = raw_header(entries=((b"a", b"k", b"b"),))
    assert len(raw) == SMALLEST == 126
    assert fmt.parse(raw).wrapped_keys == (WrappedKey("a", "k", b"b"),)


def test_limits_are_inclusive():
    at_limit = raw_header(entries=((b"p" * MAX_PROVIDER_SIZE, b"k" * MAX_KEY_ID_SIZE, b"b" * MAX_WRAPPED_KEY_SIZE),))
    assert fmt.parse(at_limit).wrapped_keys[0].key_id == "k" * MAX_KEY_ID_SIZE
    many = tuple((b"raw-aes", b"k%d" % i, b"b") for i in range(MAX_WRAPPED_KEYS))
    assert len(fmt.parse(raw_header(entries=many)).wrapped_keys) == MAX_WRAPPED_KEYS
    for size in (MIN_CHUNK_SIZE, MAX_CHUNK_SIZE):
        assert fmt.parse(raw_header(chunk_size=size)).chunk_size == size
    pairs = {f"k{i:02d}": "" for i in range(ctx.MAX_CONTEXT_PAIRS)}
    assert fmt.parse(header(context=pairs).encode()).context == pairs
    big = {"k": "v" * (ctx.MAX_CONTEXT_BYTES - 2 - 2 - 1 - 2)}
    assert len(ctx.encode(big)) == ctx.MAX_CONTEXT_BYTES
    assert fmt.parse(header(context=big).encode()).context == big


# -- every limit, on parse (FormatError) and on encode (UsageError) ----------------------------------

BAD_CHUNK_SIZES = [0, 1, 512, MIN_CHUNK_SIZE - 1, MIN_CHUNK_SIZE + 1, 1000, 3 << 10, MAX_CHUNK_SIZE * 2,
                   MAX_CHUNK_SIZE + 1, 0xFFFFFFFF]


@pytest.mark.parametrize("size", BAD_CHUNK_SIZES)
def test_chunk_size_limit(size):
    with pytest.raises(FormatError):
        fmt.parse(raw_header(chunk_size=size))
    with pytest.raises(UsageError):
        header(chunk_size=size).encode()
    with pytest.raises(UsageError):
        fmt.check_chunk_size(size)


@pytest.mark.parametrize("count", [0, MAX_WRAPPED_KEYS + 1])
def test_wrapped_key_count_limit(count):
    entries = tuple((b"raw-aes", b"k%d" % i, b"b") for i in range(count))
    with pytest.raises(FormatError):
        fmt.parse(raw_header(entries=entries))
    with pytest.raises(UsageError):
        header(wrapped_keys=tuple(WrappedKey("raw-aes", f"k{i}", b"b") for i in range(count))).encode()


@pytest.mark.parametrize(
    ("provider", "key_id", "blob"),
    [
        (b"", b"k", b"b"),
        (b"p" * (MAX_PROVIDER_SIZE + 1), b"k", b"b"),
        (b"Raw-aes", b"k", b"b"),
        (b"-raw", b"k", b"b"),
        (b".raw", b"k", b"b"),
        (b"raw aes", b"k", b"b"),
        (b"raw_aes", b"k", b"b"),
        (b"raw-aes\n", b"k", b"b"),
        ("r\u00e4w".encode(), b"k", b"b"),
        (b"raw-aes", b"", b"b"),
        (b"raw-aes", b"k" * (MAX_KEY_ID_SIZE + 1), b"b"),
        (b"raw-aes", "\u00e9".encode() * (MAX_KEY_ID_SIZE // 2) + b"k", b"b"),
        (b"raw-aes", b"\xc3", b"b"),
        (b"raw-aes", b"\xed\xa0\x80", b"b"),
        (b"raw-aes", b"k", b""),
        (b"raw-aes", b"k", b"b" * (MAX_WRAPPED_KEY_SIZE + 1)),
    ],
    ids=["provider-empty", "provider-65", "provider-upper", "provider-dash", "provider-dot", "provider-space",
         "provider-underscore", "provider-newline", "provider-non-ascii", "key-id-empty", "key-id-2049",
         "key-id-2049-utf8-bytes", "key-id-bad-utf8", "key-id-surrogate", "blob-empty", "blob-8193"],
)
def test_wrapped_key_entry_limits(provider, key_id, blob):
    with pytest.raises(FormatError):
        fmt.parse(raw_header(entries=((provider, key_id, blob),)))
    try:
        text = (provider.decode("ascii"), key_id.decode("utf-8"))
    except UnicodeDecodeError:
        return  # not representable as a WrappedKey at all
    with pytest.raises(UsageError):
        WrappedKey(text[0], text[1], blob)


def test_header_size_limit_on_encode():
    big = tuple(WrappedKey("raw-aes", f"k{i}", b"b" * MAX_WRAPPED_KEY_SIZE) for i in range(8))
    with pytest.raises(UsageError):
        header(wrapped_keys=big).encode()


@pytest.mark.parametrize("length", [0, 1, PREFIX_SIZE, 117, MAX_HEADER_SIZE + 1, 1 << 20, 0xFFFFFFFF])
def test_header_length_limit(length):
    raw = bytearray(raw_header())
    raw[11:15] = struct.pack(">I", length)
    with pytest.raises(FormatError):
        fmt.parse_prefix(bytes(raw))
    with pytest.raises(FormatError):
        fmt.parse(bytes(raw))


@pytest.mark.parametrize("delta", [-1, 1, 100])
def test_header_length_must_match_the_fields(delta):
    with pytest.raises(FormatError):
        fmt.parse(raw_header(length_delta=delta))


@pytest.mark.parametrize(
    ("offset", "value"),
    [(0, b"X"), (7, b"F"), (8, b"\x00"), (8, b"\x02"), (8, b"\xff"), (9, b"\x00\x00"), (9, b"\x00\x02"),
     (9, b"\xff\xff")],
    ids=["magic-0", "magic-7", "version-0", "version-2", "version-255", "suite-0", "suite-2", "suite-ffff"],
)
def test_prefix_magic_version_suite(offset, value):
    raw = bytearray(raw_header())
    raw[offset : offset + len(value)] = value
    with pytest.raises(FormatError):
        fmt.parse_prefix(bytes(raw))


def test_prefix_checks_come_in_order_magic_version_suite_length():
    def prefix(magic=b"ENVELOPE", version=1, suite=1, length=200):
        return magic + struct.pack(">BHI", version, suite, length)

    with pytest.raises(FormatError, match="magic"):
        fmt.parse_prefix(prefix(magic=b"ENVELOPX", version=9, suite=9, length=0))
    with pytest.raises(FormatError, match="version"):
        fmt.parse_prefix(prefix(version=9, suite=9, length=0))
    with pytest.raises(FormatError, match="suite"):
        fmt.parse_prefix(prefix(suite=9, length=0))
    with pytest.raises(FormatError, match="length"):
        fmt.parse_prefix(prefix(length=0))


def test_file_id_and_commitment_sizes_on_encode():
    for kw in ({"file_id": b"x" * 31}, {"file_id": b"x" * 33}, {"commitment": b""}, {"commitment": b"x" * 33}):
        with pytest.raises(UsageError):
            header(**kw).encode()


@pytest.mark.parametrize(
    "section",
    [
        raw_context((b"b", b""), (b"a", b"")),
        raw_context((b"a", b"1"), (b"a", b"2")),
        raw_context((b"a", b"1"), (b"a", b"1")),
        raw_context((b"ab", b""), (b"a", b"")),
        raw_context((b"", b"v")),
        raw_context((b"\xff", b"v")),
        raw_context((b"k", b"\xc3")),
        raw_context((b"\xed\xa0\x80", b"v")),
        raw_context(*[(b"k%02d" % i, b"") for i in range(ctx.MAX_CONTEXT_PAIRS + 1)]),
        raw_context((b"k", b"v" * (ctx.MAX_CONTEXT_BYTES - 2 - 2 - 1 - 2 + 1))),
        raw_context((b"a", b"1"), count=2),
        raw_context((b"a", b"1"), count=0xFFFF),
        b"\x00",
    ],
    ids=["unsorted", "duplicate", "duplicate-same-value", "prefix-after-longer", "empty-key", "key-bad-utf8",
         "value-bad-utf8", "surrogate", "65-pairs", "8193-bytes", "count-overruns", "count-ffff", "truncated"],
)
def test_context_section_limits_and_canonical_form(section):
    with pytest.raises(FormatError):
        ctx.decode(section)
    with pytest.raises(FormatError):
        fmt.parse(raw_header(context=section))


def test_context_limits_on_encode():
    with pytest.raises(UsageError):
        ctx.encode({f"k{i:02d}": "" for i in range(ctx.MAX_CONTEXT_PAIRS + 1)})
    with pytest.raises(UsageError):
        ctx.encode({"k": "v" * ctx.MAX_CONTEXT_BYTES})
    with pytest.raises(UsageError):
        header(context={"k": "v" * ctx.MAX_CONTEXT_BYTES}).encode()
    for bad in ({"": "v"}, {"k": 1}, {2: "v"}, ["k", "v"]):
        with pytest.raises(UsageError):
            ctx.normalize(bad)  # type: ignore[arg-type]


def test_header_encode_refuses_a_context_parse_would_refuse():
    with pytest.raises(UsageError):
        header(context={"": "v"}).encode()


def test_unencodable_strings_are_usage_errors():
    with pytest.raises(UsageError):
        ctx.normalize({"\ud800": "v"})


# -- the parser on hostile input ----------------------------------------------------------------------


def parse_or_format_error(data: bytes) -> Header | None:
    """parse() must return a header or raise FormatError, and a parsed header must re-encode to its bytes."""
    try:
        h = fmt.parse(data)
    except FormatError:
        return None
    assert h.encode() == data  # one encoding per header: nothing lenient got through
    return h


def read_or_format_error(data: bytes) -> None:
    stream = io.BytesIO(data)
    try:
        _, raw = fmt.read_header(stream)
    except FormatError:
        return
    assert stream.tell() == len(raw)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_format_error(data):
    parse_or_format_error(data)
    read_or_format_error(data)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_a_valid_prefix_raise_only_format_error(data):
    prefix = b"ENVELOPE" + struct.pack(">BHI", 1, 1, PREFIX_SIZE + len(data))
    parse_or_format_error(prefix + data)
    read_or_format_error(prefix + data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(headers, st.data())
def test_mutated_headers_raise_only_format_error(h, data):
    raw = bytearray(h.encode())
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        i = data.draw(st.integers(0, len(raw) - 1), label="offset")
        raw[i] = data.draw(st.integers(0, 255), label="byte")
    parse_or_format_error(bytes(raw))
    read_or_format_error(bytes(raw))


@settings(max_examples=200)
@given(headers, st.data())
def test_truncated_or_extended_headers_raise_only_format_error(h, data):
    raw = h.encode()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    with pytest.raises(FormatError):
        fmt.parse(raw[:cut])
    with pytest.raises(FormatError):
        fmt.read_header(io.BytesIO(raw[:cut]))
    extra = data.draw(st.binary(min_size=1, max_size=40), label="extra")
    with pytest.raises(FormatError):
        fmt.parse(raw + extra)  # parse() takes exactly one header
    assert fmt.read_header(io.BytesIO(raw + extra))[0] == h  # a stream reader stops at the header's end


class CountingReader(io.RawIOBase):
    """A stream that records every read request, to prove reads are bounded."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0
        self.requests: list[int] = []

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        self.requests.append(len(b))
        n = min(len(b), len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n

    @property
    def consumed(self) -> int:
        return self._pos


def test_a_header_claiming_64k_but_shorter_is_refused_after_reading_what_exists():
    raw = bytearray(raw_header())
    raw[11:15] = struct.pack(">I", MAX_HEADER_SIZE)
    stream = CountingReader(bytes(raw))
    with pytest.raises(FormatError, match="truncated"):
        fmt.read_header(stream)  # type: ignore[arg-type]
    assert stream.consumed == len(raw)
    assert max(stream.requests) <= MAX_HEADER_SIZE - PREFIX_SIZE and len(stream.requests) <= 4


@pytest.mark.parametrize("length", [MAX_HEADER_SIZE + 1, 0xFFFFFFFF, 0])
def test_an_out_of_range_header_length_is_refused_before_reading_on(length):
    raw = bytearray(raw_header() + b"\x00" * 1000)
    raw[11:15] = struct.pack(">I", length)
    stream = CountingReader(bytes(raw))
    with pytest.raises(FormatError):
        fmt.read_header(stream)  # type: ignore[arg-type]
    assert stream.consumed == PREFIX_SIZE


@pytest.mark.parametrize("bad", [b"ENVELOPX", b"ENVELOPE\x02", b"ENVELOPE\x01\x00\x09"])
def test_a_bad_magic_version_or_suite_is_refused_after_the_prefix(bad):
    data = bad + raw_header()[len(bad) :] + b"\x00" * 100
    stream = CountingReader(data)
    with pytest.raises(FormatError):
        fmt.read_header(stream)  # type: ignore[arg-type]
    assert stream.consumed == PREFIX_SIZE


def test_a_worst_case_header_parses_quickly():
    import time

    big = tuple(WrappedKey("raw-aes", f"k{i}", b"b" * 7000) for i in range(8))
    entries = tuple((wk.provider.encode(), wk.key_id.encode(), wk.ciphertext) for wk in big)
    raw = raw_header(entries=entries, context=raw_context(*[(b"k%02d" % i, b"v" * 100) for i in range(64)]))
    assert len(raw) <= MAX_HEADER_SIZE
    start = time.perf_counter()
    for _ in range(20):
        fmt.parse(raw)
    assert time.perf_counter() - start < 2.0


# -- the chunk layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [MIN_CHUNK_SIZE, 2048, 4096])
@pytest.mark.parametrize("header_size", [SMALLEST, 223, 1000])
def test_ciphertext_size_and_plaintext_size_are_inverse(chunk_size, header_size):
    image = {}
    for n in range(0, 4 * chunk_size + 40):
        total = fmt.ciphertext_size(header_size, n, chunk_size)
        chunks = fmt.chunk_count(n, chunk_size)
        assert chunks == max(1, -(-n // chunk_size))
        assert total == header_size + n + TAG_SIZE * chunks
        assert fmt.plaintext_size(header_size, total, chunk_size) == n
        # the last chunk starts where chunk_offset says and runs to the end of the file
        last_start = fmt.chunk_offset(header_size, chunk_size, chunks - 1)
        assert TAG_SIZE <= total - last_start <= chunk_size + TAG_SIZE
        assert (total - last_start == TAG_SIZE) == (n == 0)
        image[total] = n
    for total in range(header_size, max(image) + 1):
        if total not in image:
            with pytest.raises(FormatError):
                fmt.plaintext_size(header_size, total, chunk_size)


@pytest.mark.parametrize("chunk_size", [MIN_CHUNK_SIZE, 1 << 20, MAX_CHUNK_SIZE])
def test_plaintext_size_rejects_impossible_lengths(chunk_size):
    h, sealed = 300, chunk_size + TAG_SIZE
    impossible = [h, h + 1, h + TAG_SIZE - 1,  # no chunk, or less than one tag
                  h + sealed + TAG_SIZE,  # an empty final chunk after data
                  h + sealed + 5, h + 3 * sealed + TAG_SIZE - 1]  # a last chunk shorter than its tag
    for total in impossible:
        with pytest.raises(FormatError):
            fmt.plaintext_size(h, total, chunk_size)
    assert fmt.plaintext_size(h, h + TAG_SIZE, chunk_size) == 0
    assert fmt.plaintext_size(h, h + 3 * sealed, chunk_size) == 3 * chunk_size


def test_plaintext_size_rejects_a_total_smaller_than_the_header():
    with pytest.raises(FormatError):
        fmt.plaintext_size(300, 295, MIN_CHUNK_SIZE)


@settings(max_examples=200)
@given(st.integers(0, 1 << 40), chunk_sizes, st.integers(SMALLEST, MAX_HEADER_SIZE))
def test_size_formulas_hold_for_large_files(n, chunk_size, header_size):
    total = fmt.ciphertext_size(header_size, n, chunk_size)
    assert fmt.plaintext_size(header_size, total, chunk_size) == n
    index = fmt.chunk_count(n, chunk_size) - 1
    assert fmt.chunk_offset(header_size, chunk_size, index) == header_size + index * (chunk_size + TAG_SIZE)


def test_chunk_offsets():
    assert fmt.chunk_offset(200, 1024, 0) == 200
    assert fmt.chunk_offset(200, 1024, 1) == 200 + 1040
    assert fmt.chunk_offset(200, 1 << 20, 10) == 200 + 10 * ((1 << 20) + 16)
    assert fmt.chunk_count(0, 1024) == 1 and fmt.chunk_count(1024, 1024) == 1 and fmt.chunk_count(1025, 1024) == 2


# -- the encryption context ---------------------------------------------------------------------------


@settings(max_examples=200)
@given(contexts)
def test_context_encode_decode_round_trip_in_canonical_order(pairs):
    encoded = ctx.encode(pairs)
    decoded, end = ctx.decode(b"xx" + encoded + b"yy", 2)
    assert decoded == pairs and end == 2 + len(encoded)
    assert list(decoded) == sorted(pairs, key=lambda k: k.encode("utf-8"))
    assert ctx.encode(ctx.normalize(pairs)) == encoded
    assert list(ctx.normalize(pairs)) == list(decoded)


def test_context_order_is_by_utf8_bytes_not_utf16_or_case():
    pairs = {"\U0001f600": "", "\uff5a": "", "b": "", "B": "", "\u00e9": "", "a": "", "aa": ""}
    assert list(ctx.normalize(pairs)) == ["B", "a", "aa", "b", "\u00e9", "\uff5a", "\U0001f600"]


def test_context_encoding_bytes():
    assert ctx.encode({}) == b"\x00\x00"
    assert ctx.encode({"b": "2", "a": "xy"}) == bytes.fromhex("0002" "0001") + b"a" + bytes.fromhex(
        "0002") + b"xy" + bytes.fromhex("0001") + b"b" + bytes.fromhex("0001") + b"2"


def test_parse_pairs():
    assert ctx.parse_pairs([]) == {}
    parsed = ctx.parse_pairs(["env=prod", "app=billing", "url=a=b", "empty="])
    assert parsed == {"app": "billing", "empty": "", "env": "prod", "url": "a=b"}
    assert list(parsed) == ["app", "empty", "env", "url"]
    for bad in (["novalue"], ["=v"], ["k=1", "k=2"], [f"k{i:02d}=v" for i in range(65)]):
        with pytest.raises(UsageError):
            ctx.parse_pairs(bad)


def test_require_subset():
    actual = {"app": "billing", "env": "prod"}
    ctx.require_subset({}, actual)
    ctx.require_subset({"env": "prod"}, actual)
    ctx.require_subset(actual, actual)
    for required in ({"tenant": "acme"}, {"env": "dev"}, {"env": "Prod"}, {**actual, "x": "y"}, {"env": ""}):
        with pytest.raises(ContextMismatchError):
            ctx.require_subset(required, actual)
    with pytest.raises(ContextMismatchError):
        ctx.require_subset({"app": "billing"}, {})
