"""SigV4 verification against botocore's own signer, and a real boto3 KMS client's requests.

Each refusal is checked for AWS's error type and text, since SDKs dispatch on
them; no request here leaves the process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

botocore = pytest.importorskip("botocore")
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest, AWSResponse  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

from envelope.exceptions import AccessDeniedError, KeyNotFoundError  # noqa: E402
from envelope.kms.operations import credentials  # noqa: E402
from envelope.kms.store import KeyStore  # noqa: E402
from envelope.server import sigv4  # noqa: E402
from envelope.server.errors import (  # noqa: E402
    IncompleteSignatureException,
    InvalidSignatureException,
    UnrecognizedClientException,
)

AKID = "EKIAABCDEFGHIJKLMNOP"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
URL = "http://127.0.0.1:8790/"
BODY = b'{"KeyId": "alias/app", "Plaintext": "aGVsbG8="}'


@dataclass(frozen=True)
class Wire:
    """A request as the server receives it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def timestamp(self) -> datetime:
        return datetime.strptime(self.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)

    def with_header(self, name: str, value: str | None) -> Wire:
        headers = {k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        if value is not None:
            headers[name] = value
        return replace(self, headers=headers)


def signed(body: bytes = BODY, *, url: str = URL, target: str = "TrentService.Encrypt", region: str = REGION,
           service: str = "kms", akid: str = AKID, secret: str = SECRET,
           extra: dict[str, str] | None = None) -> Wire:
    request = AWSRequest(method="POST", url=url, data=body,
                         headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target,
                                  **(extra or {})})
    SigV4Auth(Credentials(akid, secret), service, region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    headers = dict(prepared.headers)
    headers["Host"] = parts.netloc  # what the HTTP client sends, and botocore signed
    return Wire(prepared.method, parts.path, parts.query, headers, prepared.body or b"")


def lookup(table: dict[str, tuple[str, bytes]]) -> Callable[[str], tuple[str, bytes]]:
    def secret_for(access_key_id: str) -> tuple[str, bytes]:
        if access_key_id not in table:
            raise KeyNotFoundError("no such access key")
        return table[access_key_id]
    return secret_for


SECRETS = lookup({AKID: ("local:user/alice", SECRET.encode())})


def verify(wire: Wire, *, region: str = REGION, now: datetime | None = None,
           secret_for: Callable[[str], tuple[str, bytes]] = SECRETS) -> sigv4.Caller:
    return sigv4.verify(wire.method, wire.path, wire.query, wire.headers, wire.body, region=region,
                        secret_for=secret_for, now=now or wire.timestamp)


# -- what verifies ----------------------------------------------------------------------------------


def test_a_request_signed_by_botocore_verifies_as_its_credentials_principal() -> None:
    assert verify(signed()) == sigv4.Caller("local:user/alice", AKID)


def test_header_names_are_matched_whatever_their_case() -> None:
    wire = signed()
    lowered = replace(wire, headers={k.lower(): v for k, v in wire.headers.items()})
    upper = replace(wire, headers={k.upper(): v for k, v in wire.headers.items()})
    now = wire.timestamp
    assert verify(lowered, now=now).principal == verify(upper, now=now).principal == "local:user/alice"


def test_paths_queries_and_spaced_header_values_are_canonicalized_as_botocore_signs_them() -> None:
    wire = signed(url="http://127.0.0.1:8790/a/./b//c%20d/../e?b=2&a=x%2Fy&a=1&empty=",
                  extra={"X-Custom": "  several   spaces  here "})
    assert "x-custom" in wire.headers["Authorization"]
    assert verify(wire).access_key_id == AKID


def test_an_empty_body_verifies() -> None:
    assert verify(signed(b"")).principal == "local:user/alice"


def test_a_real_boto3_kms_client_request_verifies_and_a_tampered_copy_does_not() -> None:
    boto3 = pytest.importorskip("boto3")
    captured: list[Any] = []

    def capture(request: Any, **_: Any) -> AWSResponse:
        captured.append(request)
        body = json.dumps({"KeyId": "k", "CiphertextBlob": "AAAA"}).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"},
                           _Raw(body))  # type: ignore[arg-type]

    client = boto3.client("kms", region_name=REGION, endpoint_url="http://127.0.0.1:8790",
                          aws_access_key_id=AKID, aws_secret_access_key=SECRET)
    client.meta.events.register("before-send.kms.*", capture)
    client.encrypt(KeyId="alias/app", Plaintext=b"hello", EncryptionContext={"purpose": "test"})
    (request,) = captured
    parts = urlsplit(request.url)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    headers["Host"] = parts.netloc
    wire = Wire(request.method, parts.path, parts.query, headers, request.body)
    assert verify(wire) == sigv4.Caller("local:user/alice", AKID)
    forged = replace(wire, body=wire.body.replace(b"alias/app", b"alias/xxx"))
    with pytest.raises(InvalidSignatureException, match="does not match the signature you provided"):
        verify(forged)


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


# -- what is refused, and how -----------------------------------------------------------------------


def test_a_changed_body_is_refused_with_aws_signature_mismatch_text() -> None:
    wire = signed()
    with pytest.raises(InvalidSignatureException) as refused:
        verify(replace(wire, body=wire.body + b" "))
    assert refused.value.message == sigv4.SIGNATURE_MISMATCH
    assert refused.value.code == "InvalidSignatureException" and refused.value.status == 400


def test_a_changed_signed_header_is_refused() -> None:
    wire = signed()
    with pytest.raises(InvalidSignatureException, match="does not match"):
        verify(wire.with_header("X-Amz-Target", "TrentService.Decrypt"))
    with pytest.raises(InvalidSignatureException, match="does not match"):
        verify(wire.with_header("Content-Type", "application/json"))


def test_a_changed_timestamp_is_refused() -> None:
    wire = signed()
    later = (wire.timestamp + timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")
    with pytest.raises(InvalidSignatureException, match="does not match"):
        verify(wire.with_header("X-Amz-Date", later), now=wire.timestamp)


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignatureException, match="does not match"):
        verify(signed(secret=SECRET[:-1] + "X"))


def test_a_signature_for_another_region_is_refused_naming_the_region() -> None:
    with pytest.raises(InvalidSignatureException, match="Credential should be scoped to a valid region, "
                                                        "not 'us-west-2'"):
        verify(signed(region="us-west-2"))


def test_a_signature_for_another_service_is_refused() -> None:
    with pytest.raises(InvalidSignatureException, match="Credential should be scoped to correct service: 'kms'"):
        verify(signed(service="s3"))


def test_a_credential_scope_dated_another_day_is_refused() -> None:
    wire = signed()
    day = wire.headers["X-Amz-Date"][:8]
    other = "19990101" if day != "19990101" else "19990102"
    auth = wire.headers["Authorization"].replace(f"/{day}/", f"/{other}/")
    with pytest.raises(InvalidSignatureException, match="Date in Credential scope does not match"):
        verify(wire.with_header("Authorization", auth))


def test_an_unknown_access_key_id_is_refused_as_aws_refuses_an_unknown_token() -> None:
    with pytest.raises(UnrecognizedClientException) as refused:
        verify(signed(akid="EKIAZZZZZZZZZZZZZZZZ"))
    assert refused.value.message == "The security token included in the request is invalid."


def test_a_disabled_access_key_is_refused_and_an_enabled_one_verifies(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "keystore.db") as store:
        credential, secret = credentials.create_credential(store, "alice")
        wire = signed(akid=credential.access_key_id, secret=secret)

        def secret_for(access_key_id: str) -> tuple[str, bytes]:
            return credentials.secret_for(store, access_key_id)

        assert verify(wire, secret_for=secret_for) == sigv4.Caller("local:user/alice", credential.access_key_id)
        credentials.disable_credential(store, credential.access_key_id)
        with pytest.raises(UnrecognizedClientException, match="security token included in the request is invalid"):
            verify(wire, secret_for=secret_for)
        credentials.enable_credential(store, credential.access_key_id)
        assert verify(wire, secret_for=secret_for).access_key_id == credential.access_key_id
        credentials.delete_credential(store, credential.access_key_id)
        with pytest.raises(UnrecognizedClientException):
            verify(wire, secret_for=secret_for)


def test_clock_skew_of_five_minutes_either_way_is_accepted_and_a_second_more_is_refused() -> None:
    wire = signed()
    t = wire.timestamp
    for offset in (timedelta(minutes=5), -timedelta(minutes=5), timedelta(0)):
        assert verify(wire, now=t + offset).principal == "local:user/alice"
    with pytest.raises(InvalidSignatureException) as expired:
        verify(wire, now=t + timedelta(minutes=5, seconds=1))
    fmt = "%Y%m%dT%H%M%SZ"
    now = t + timedelta(minutes=5, seconds=1)
    assert expired.value.message == (f"Signature expired: {t.strftime(fmt)} is now earlier than "
                                     f"{(now - timedelta(minutes=5)).strftime(fmt)} ({now.strftime(fmt)} - 5 min.)")
    with pytest.raises(InvalidSignatureException, match="Signature not yet current"):
        verify(wire, now=t - timedelta(minutes=5, seconds=1))


def test_a_request_without_authorization_is_refused_as_incomplete() -> None:
    with pytest.raises(IncompleteSignatureException) as refused:
        verify(signed().with_header("Authorization", None))
    assert refused.value.code == "IncompleteSignatureException" and refused.value.status == 400


@pytest.mark.parametrize("mangle, text", [
    (lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), "Unsupported AWS 'algorithm'"),
    (lambda a: a.split(", Signature=")[0], "requires 'Signature' parameter"),
    (lambda a: a.replace("Credential=", "Cred="), "requires 'Credential' parameter"),
    (lambda a: a.replace("/aws4_request", ""), "exactly 5 slash-delimited elements"),
    (lambda a: a[:-1] + "Z", "64 lower-case hexadecimal digits"),
    (lambda a: a.replace("SignedHeaders=content-type;host;", "SignedHeaders=host;content-type;"), "sorted"),
    (lambda a: a.replace("content-type;host;x-amz-date;x-amz-target", "content-type;x-amz-date;x-amz-target"),
     "'host' must be a 'SignedHeader'"),
    (lambda a: a.replace("x-amz-date;x-amz-target", "x-amz-date"), "'x-amz-target' must be a 'SignedHeader'"),
    (lambda a: a.replace("x-amz-date;x-amz-target", "x-amz-date;x-amz-target;x-other"),
     "signed header 'x-other' is missing"),
    (lambda a: a + "," + "x" * 5000, "too long"),
    (lambda a: a.replace("SignedHeaders=", "SignedHeaders=" + ";".join(f"h{i:03}" for i in range(80)) + ";"),
     "Invalid SignedHeaders"),
])
def test_a_malformed_authorization_header_is_refused_as_incomplete(mangle: Callable[[str], str],
                                                                   text: str) -> None:
    wire = signed()
    with pytest.raises(IncompleteSignatureException, match=text):
        verify(wire.with_header("Authorization", mangle(wire.headers["Authorization"])))


def test_a_missing_or_malformed_timestamp_is_refused_as_incomplete() -> None:
    wire = signed()
    with pytest.raises(IncompleteSignatureException, match="'X-Amz-Date' or a 'Date' header"):
        verify(wire.with_header("X-Amz-Date", None), now=wire.timestamp)
    with pytest.raises(IncompleteSignatureException, match="ISO-8601 'basic format'"):
        verify(wire.with_header("X-Amz-Date", "2026-12-07T11:00:00Z"), now=wire.timestamp)


def test_a_session_token_is_refused_since_the_keystore_issues_none() -> None:
    wire = signed(extra={"X-Amz-Security-Token": "FwoGZXIvYXdzE..."})
    with pytest.raises(UnrecognizedClientException, match="security token"):
        verify(wire)


def test_a_content_sha256_header_must_match_the_body() -> None:
    wire = signed(extra={"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(InvalidSignatureException, match="x-amz-content-sha256"):
        verify(wire)


def test_refusals_never_quote_the_secret_or_the_expected_signature() -> None:
    wire = signed(secret="A" * 40)
    with pytest.raises(InvalidSignatureException) as refused:
        verify(wire)
    text = str(refused.value) + refused.value.body().decode()
    assert SECRET not in text and "A" * 40 not in text
    expected = signed().headers["Authorization"].rsplit("Signature=", 1)[1]  # what the right secret signs
    assert expected not in text


def test_the_secret_lookup_is_not_consulted_for_a_request_refused_on_its_form() -> None:
    asked: list[str] = []

    def secret_for(access_key_id: str) -> tuple[str, bytes]:
        asked.append(access_key_id)
        return "local:user/alice", SECRET.encode()

    with pytest.raises(InvalidSignatureException):
        verify(signed(region="eu-west-1"), secret_for=secret_for)
    with pytest.raises(IncompleteSignatureException):
        verify(signed().with_header("Authorization", "AWS4-HMAC-SHA256 Credential=x"), secret_for=secret_for)
    assert asked == []


def test_a_signed_boto3_style_request_runs_as_its_principal_and_is_audited_with_key_and_source(
        tmp_path: Path) -> None:
    from envelope.kms.policy.principal import calling_as

    with KeyStore(tmp_path / "keystore.db", principal="owner") as store:
        key = store.create_key(users=["alice"], admins=["owner"])
        credential, secret = credentials.create_credential(store, "alice")
        wire = signed(json.dumps({"KeyId": key.key_id, "NumberOfBytes": 32}).encode(),
                      target="TrentService.GenerateDataKey", akid=credential.access_key_id, secret=secret)
        caller = verify(wire, secret_for=lambda akid: credentials.secret_for(store, akid))
        with calling_as(caller.principal, source="127.0.0.1:50000", access_key_id=caller.access_key_id):
            store.generate_data_key(key.key_id)
            with pytest.raises(AccessDeniedError, match="may not DisableKey"):
                store.disable_key(key.key_id)
        rows = [(e.operation, e.ok, e.principal, e.source, e.access_key_id)
                for e in store.audit_events(key=key.key_id)][1:]
    assert rows == [("GenerateDataKey", True, "local:user/alice", "127.0.0.1:50000", credential.access_key_id),
                    ("DisableKey", False, "local:user/alice", "127.0.0.1:50000", credential.access_key_id)]


def test_the_verification_benchmark_script_runs() -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "sigv4_verify.py"
    result = subprocess.run([sys.executable, str(script), "--rounds", "1", "--calls", "5"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| verify + secret_for (per request) |" in result.stdout
