"""``envelope keys serve`` through boto3 and raw signed HTTP: operations, AWS's errors, signing and policies.

One server (a subprocess on 127.0.0.1, ``--port 0``) serves the module; every
call is signed with an access key of the principal it acts as, so key
policies and grants apply to authenticated callers.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("uvicorn")

import requests  # noqa: E402  (botocore's dependency)
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

import kms_server_kit as kit  # noqa: E402
from envelope.kms.store import KeyStore  # noqa: E402

ADMIN = "local:user/admin"
USER = "local:user/user"
OTHER = "local:user/other"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with kit.serving(tmp_path_factory.mktemp("served"), (ADMIN, USER, OTHER)) as server:
        yield server


@pytest.fixture(scope="module")
def owner(served: kit.Served) -> Any:
    return served.client()


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def audit_rows(served: kit.Served) -> int:
    with sqlite3.connect(served.keystore) as conn:
        return int(conn.execute("SELECT count(*) FROM audit").fetchone()[0])


def signed_post(served: kit.Served, body: bytes, target: str = "TrentService.ListKeys",
                content_type: str = "application/x-amz-json-1.1", principal: str = kit.OWNER,
                secret: str | None = None) -> requests.Response:
    """A request signed by botocore's own SigV4 signer, with whatever body and headers the test wants."""
    key_id, real_secret = served.credentials[principal]
    request = AWSRequest(method="POST", url=served.url + "/", data=body,
                         headers={"Content-Type": content_type, "X-Amz-Target": target})
    SigV4Auth(Credentials(key_id, secret or real_secret), "kms", kit.REGION).add_auth(request)
    return requests.post(served.url + "/", data=body, headers=dict(request.headers.items()), timeout=30)


# -- the server --------------------------------------------------------------------------------------


def test_the_first_stdout_line_is_the_endpoint_on_loopback(served: kit.Served) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    assert int(served.url.rsplit(":", 1)[1]) > 0


def test_sigterm_finishes_and_returns_the_keystore_to_its_rollback_journal(tmp_path: Path) -> None:
    server = kit.serve(tmp_path)
    server.client().create_key(Description="before the signal")
    assert kit.stop(server.proc) == 0
    assert not (tmp_path / "keystore.db-wal").exists()
    with KeyStore(tmp_path / "keystore.db", create=False) as store:
        assert [k.description for k in store.list_keys()] == ["before the signal"]


def test_tls_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with kit.serving(tmp_path, (), "--tls-cert", str(cert), "--tls-key", str(key)) as server:
        assert server.url.startswith("https://127.0.0.1:")
        key_id, secret = server.credentials[kit.OWNER]
        client = boto3.client("kms", endpoint_url=server.url.replace("127.0.0.1", "localhost"), region_name=kit.REGION, aws_access_key_id=key_id,
                          aws_secret_access_key=secret, verify=str(cert))
        assert client.list_keys()["Keys"] == []
        client.close()


# -- operations --------------------------------------------------------------------------------------


def test_a_key_lives_its_whole_life_through_boto3(owner: Any) -> None:
    meta = owner.create_key(Description="life", Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]
    key_id, arn = meta["KeyId"], meta["Arn"]
    assert arn == f"arn:aws:kms:{kit.REGION}:{meta['AWSAccountId']}:key/{key_id}"
    assert (meta["KeyState"], meta["Origin"], meta["EncryptionAlgorithms"]) == ("Enabled", "AWS_KMS",
                                                                                 ["SYMMETRIC_DEFAULT"])
    assert isinstance(meta["CreationDate"], datetime.datetime)
    owner.create_alias(AliasName="alias/life", TargetKeyId=key_id)
    assert owner.describe_key(KeyId="alias/life")["KeyMetadata"]["Arn"] == arn
    aliases = owner.list_aliases(KeyId=arn)["Aliases"]
    assert [(a["AliasName"], a["TargetKeyId"]) for a in aliases] == [("alias/life", key_id)]
    owner.tag_resource(KeyId=arn, Tags=[{"TagKey": "env", "TagValue": "dev"}])
    owner.untag_resource(KeyId=arn, TagKeys=["team"])
    assert owner.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "env", "TagValue": "dev"}]
    owner.update_key_description(KeyId=key_id, Description="renamed")
    owner.disable_key(KeyId=key_id)
    assert owner.describe_key(KeyId=key_id)["KeyMetadata"]["Enabled"] is False
    owner.enable_key(KeyId=key_id)
    owner.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    status = owner.get_key_rotation_status(KeyId=key_id)
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 90)
    owner.rotate_key_on_demand(KeyId=key_id)
    assert [r["RotationType"] for r in owner.list_key_rotations(KeyId=key_id)["Rotations"]] == ["ON_DEMAND"]
    policy = json.loads(owner.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    owner.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))
    assert owner.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"]
    owner.update_alias(AliasName="alias/life", TargetKeyId=owner.create_key()["KeyMetadata"]["KeyId"])
    owner.delete_alias(AliasName="alias/life")
    scheduled = owner.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    owner.cancel_key_deletion(KeyId=key_id)
    assert owner.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


def test_list_keys_pages_with_limit_and_marker(owner: Any) -> None:
    for _ in range(3):
        owner.create_key()
    everything = owner.list_keys()["Keys"]
    first = owner.list_keys(Limit=2)
    assert first["Truncated"] and len(first["Keys"]) == 2
    rest = owner.list_keys(Marker=first["NextMarker"])["Keys"]
    assert first["Keys"] + rest == everything
    paged = [k for page in owner.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2})
             for k in page["Keys"]]
    assert paged == everything


def test_data_keys_and_small_secrets_round_trip(owner: Any) -> None:
    key = owner.create_key()["KeyMetadata"]["Arn"]
    context = {"purpose": "test"}
    data_key = owner.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=context)
    assert len(data_key["Plaintext"]) == 32 and data_key["KeyId"] == key
    opened = owner.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context)
    assert opened["Plaintext"] == data_key["Plaintext"] and opened["KeyId"] == key
    blob = owner.generate_data_key_without_plaintext(KeyId=key, NumberOfBytes=16)["CiphertextBlob"]
    assert len(owner.decrypt(CiphertextBlob=blob)["Plaintext"]) == 16
    sealed = owner.encrypt(KeyId=key, Plaintext=b"secret", EncryptionContext=context)["CiphertextBlob"]
    other = owner.create_key()["KeyMetadata"]["Arn"]
    moved = owner.re_encrypt(CiphertextBlob=sealed, SourceEncryptionContext=context, DestinationKeyId=other)
    assert (moved["SourceKeyId"], moved["KeyId"]) == (key, other)
    assert owner.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"secret"
    assert len(owner.generate_random(NumberOfBytes=24)["Plaintext"]) == 24


def test_decrypt_refusals_are_aws_errors(owner: Any) -> None:
    key = owner.create_key()["KeyMetadata"]["KeyId"]
    other = owner.create_key()["KeyMetadata"]["KeyId"]
    blob = owner.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"a": "1"})["CiphertextBlob"]
    with pytest.raises(ClientError) as wrong_context:
        owner.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "2"})
    assert code(wrong_context) == "InvalidCiphertextException"
    with pytest.raises(ClientError) as wrong_key:
        owner.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "1"}, KeyId=other)
    assert code(wrong_key) == "IncorrectKeyException"
    with pytest.raises(ClientError) as garbage:
        # Garbage that is no blob: a first byte of 1 or 2 (a blob version) would name some random key
        # instead, answered NotFoundException, one run in 128.
        owner.decrypt(CiphertextBlob=b"\xff" + os.urandom(79))
    assert code(garbage) == "InvalidCiphertextException"
    with pytest.raises(ClientError) as missing:
        owner.describe_key(KeyId="alias/does-not-exist")
    assert code(missing) == "NotFoundException"
    assert "alias/does-not-exist does not exist" in str(missing.value)
    assert "keystore.db" not in str(missing.value)  # the server's file system is none of the client's business
    with pytest.raises(ClientError) as foreign:
        owner.describe_key(KeyId=f"arn:aws:kms:eu-west-1:111122223333:key/{key}")
    assert code(foreign) == "NotFoundException"
    owner.create_alias(AliasName="alias/taken", TargetKeyId=key)
    with pytest.raises(ClientError) as taken:
        owner.create_alias(AliasName="alias/taken", TargetKeyId=other)
    assert code(taken) == "AlreadyExistsException"
    owner.schedule_key_deletion(KeyId=other, PendingWindowInDays=7)
    with pytest.raises(ClientError) as pending:
        owner.encrypt(KeyId=other, Plaintext=b"x")
    assert code(pending) == "KMSInvalidStateException"


def test_signing_and_mac_keys_work_and_refuse_as_aws_does(owner: Any) -> None:
    signer = owner.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signature = owner.sign(KeyId=signer, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert owner.verify(KeyId=signer, Message=b"m", Signature=signature,
                        SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True
    with pytest.raises(ClientError) as forged:
        owner.verify(KeyId=signer, Message=b"n", Signature=signature, SigningAlgorithm="ECDSA_SHA_256")
    assert code(forged) == "KMSInvalidSignatureException"
    public = owner.get_public_key(KeyId=signer)
    assert public["KeySpec"] == "ECC_NIST_P256" and public["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    mac_key = owner.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    mac = owner.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert owner.verify_mac(KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]
    with pytest.raises(ClientError) as bad_mac:
        owner.verify_mac(KeyId=mac_key, Message=b"n", Mac=mac, MacAlgorithm="HMAC_SHA_256")
    assert code(bad_mac) == "KMSInvalidMacException"
    with pytest.raises(ClientError) as usage:
        owner.encrypt(KeyId=mac_key, Plaintext=b"x")
    assert code(usage) == "InvalidKeyUsageException"


def test_imported_key_material_goes_in_over_the_wire(owner: Any) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key = owner.create_key(Origin="EXTERNAL")["KeyMetadata"]
    assert key["KeyState"] == "PendingImport"
    params = owner.get_parameters_for_import(KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                             WrappingKeySpec="RSA_2048")
    public = serialization.load_der_public_key(params["PublicKey"])
    wrapped = public.encrypt(os.urandom(32), padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    owner.import_key_material(KeyId=key["KeyId"], ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped,
                              ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    blob = owner.encrypt(KeyId=key["KeyId"], Plaintext=b"mine")["CiphertextBlob"]
    assert owner.decrypt(CiphertextBlob=blob)["Plaintext"] == b"mine"
    with pytest.raises(ClientError) as reused:
        owner.import_key_material(KeyId=key["KeyId"], ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped,
                                  ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert code(reused) == "InvalidImportTokenException"
    owner.delete_imported_key_material(KeyId=key["KeyId"])
    assert owner.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"


def test_a_multi_region_key_replicates_to_another_region(owner: Any) -> None:
    primary = owner.create_key(MultiRegion=True)["KeyMetadata"]
    assert primary["KeyId"].startswith("mrk-")
    replica = owner.replicate_key(KeyId=primary["KeyId"], ReplicaRegion="us-west-2")["ReplicaKeyMetadata"]
    assert replica["Arn"] == primary["Arn"].replace(kit.REGION, "us-west-2")
    assert replica["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"


# -- the protocol: refusals before the keystore --------------------------------------------------------


@pytest.mark.parametrize(("body", "target", "content_type", "error", "status"), [
    (b"{}", "TrentService.NoSuchOperation", "application/x-amz-json-1.1", "UnknownOperationException", 400),
    (b"{}", "TrentService.GenerateDataKeyPair", "application/x-amz-json-1.1", "UnknownOperationException", 400),
    (b"{not json", "TrentService.ListKeys", "application/x-amz-json-1.1", "SerializationException", 400),
    (b'{"Limit": "ten"}', "TrentService.ListKeys", "application/x-amz-json-1.1", "SerializationException", 400),
    (b'{"Limit": 5, "Surprise": 1}', "TrentService.ListKeys", "application/x-amz-json-1.1", "ValidationException",
     400),
    (b'{"Limit": 0}', "TrentService.ListKeys", "application/x-amz-json-1.1", "ValidationException", 400),
    (b"{}", "TrentService.CreateAlias", "application/x-amz-json-1.1", "ValidationException", 400),
    (b"{}", "TrentService.ListKeys", "text/plain", "ValidationException", 400),
    (b'{"Description": "' + b"x" * 200_000 + b'"}', "TrentService.CreateKey", "application/x-amz-json-1.1",
     "ValidationException", 400),
])
def test_bad_requests_get_aws_errors_and_change_nothing(served: kit.Served, body: bytes, target: str,
                                                        content_type: str, error: str, status: int) -> None:
    before = audit_rows(served)
    response = signed_post(served, body, target, content_type)
    assert response.status_code == status
    assert response.json()["__type"] == error
    assert "Traceback" not in response.text
    assert audit_rows(served) == before


def test_unsigned_badly_signed_and_stale_requests_are_refused_before_any_key(served: kit.Served) -> None:
    before = audit_rows(served)
    unsigned = requests.post(served.url + "/", data=b"{}", timeout=30, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"})
    assert unsigned.status_code == 400 and unsigned.json()["__type"] == "IncompleteSignatureException"
    forged = signed_post(served, b"{}", secret="x" * 40)
    assert forged.status_code == 400 and forged.json()["__type"] == "InvalidSignatureException"
    stranger = served.client()
    stranger._request_signer._credentials = Credentials("EKIA" + "Z" * 16, "y" * 40)
    with pytest.raises(ClientError) as unknown:
        stranger.list_keys()
    assert code(unknown) == "UnrecognizedClientException"
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
    with mock.patch("botocore.auth.get_current_datetime", return_value=past.replace(tzinfo=None)):
        with pytest.raises(ClientError) as stale:
            served.client().list_keys()
    assert code(stale) == "InvalidSignatureException"
    assert audit_rows(served) == before


# -- policies and grants, with authenticated principals ----------------------------------------------


@pytest.fixture(scope="module")
def roles_key(served: kit.Served) -> str:
    """A key whose policy has the owner, an administrator (ADMIN) and a user (USER)."""
    with KeyStore(served.keystore, create=False, principal=kit.OWNER) as store:
        return store.create_key("roles", admins=[ADMIN], users=[USER]).key_id


def test_an_administrator_manages_but_cannot_decrypt(served: kit.Served, roles_key: str) -> None:
    blob = served.client(USER).encrypt(KeyId=roles_key, Plaintext=b"payroll")["CiphertextBlob"]
    admin = served.client(ADMIN)
    admin.update_key_description(KeyId=roles_key, Description="managed")
    with pytest.raises(ClientError) as refused:
        admin.decrypt(CiphertextBlob=blob)
    assert code(refused) == "AccessDeniedException"
    assert served.client(USER).decrypt(CiphertextBlob=blob)["Plaintext"] == b"payroll"


def test_a_user_cannot_change_the_policy(served: kit.Served, roles_key: str) -> None:
    policy = served.client(ADMIN).get_key_policy(KeyId=roles_key, PolicyName="default")["Policy"]
    with pytest.raises(ClientError) as refused:
        served.client(USER).put_key_policy(KeyId=roles_key, PolicyName="default", Policy=policy)
    assert code(refused) == "AccessDeniedException"


def test_a_grant_is_used_with_its_token_and_ends_when_retired(served: kit.Served, roles_key: str) -> None:
    user, other = served.client(USER), served.client(OTHER)
    blob = user.encrypt(KeyId=roles_key, Plaintext=b"shared")["CiphertextBlob"]
    with pytest.raises(ClientError) as before:
        other.decrypt(CiphertextBlob=blob)
    assert code(before) == "AccessDeniedException"
    grant = served.client().create_grant(KeyId=roles_key, GranteePrincipal=OTHER, Operations=["Decrypt"],
                                         RetiringPrincipal=OTHER)
    opened = other.decrypt(CiphertextBlob=blob, GrantTokens=[grant["GrantToken"]])
    assert opened["Plaintext"] == b"shared"
    with pytest.raises(ClientError) as bogus:
        other.decrypt(CiphertextBlob=blob, GrantTokens=["envgt1." + "A" * 86])
    assert code(bogus) == "InvalidGrantTokenException"
    listed = served.client().list_grants(KeyId=roles_key)["Grants"]
    assert [g["GrantId"] for g in listed] == [grant["GrantId"]] and listed[0]["GranteePrincipal"] == OTHER
    other.retire_grant(GrantToken=grant["GrantToken"])
    with pytest.raises(ClientError) as after:
        other.decrypt(CiphertextBlob=blob)
    assert code(after) == "AccessDeniedException"


def test_a_disabled_key_is_refused(served: kit.Served) -> None:
    owner = served.client()
    key = owner.create_key()["KeyMetadata"]["KeyId"]
    owner.disable_key(KeyId=key)
    with pytest.raises(ClientError) as refused:
        owner.generate_data_key(KeyId=key, KeySpec="AES_256")
    assert code(refused) == "DisabledException"


def test_audit_rows_name_the_authenticated_principal_source_and_access_key(served: kit.Served,
                                                                           roles_key: str) -> None:
    served.client(USER).encrypt(KeyId=roles_key, Plaintext=b"who")
    with KeyStore(served.keystore, create=False, principal=kit.OWNER) as store:
        event = store.audit_events(key=roles_key, operation="Encrypt")[-1]
    assert (event.principal, event.source, event.access_key_id) == (USER, "127.0.0.1", served.credentials[USER][0])


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def test_without_uvicorn_serve_names_the_extra_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    code_ = ("import sys; sys.modules['uvicorn'] = None\n"
             "from envelope.cli.main import main\n"
             f"sys.exit(main(['keys', 'serve', '--port', '0', '--keystore', {str(tmp_path / 'k.db')!r}]))")
    done = subprocess.run([sys.executable, "-c", code_], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "envelope: error: uvicorn is needed for envelope keys serve and is not installed: pip install "
        "'envelope[server]'"]
    assert not (tmp_path / "k.db").exists()


def test_a_principal_over_its_quota_is_throttled_as_aws_throttles(tmp_path: Path) -> None:
    with kit.serving(tmp_path, (USER,), "--principal-rps", "0.5") as server:
        user = server.client(USER)
        key = server.client().create_key()["KeyMetadata"]["KeyId"]  # the owner's quota is its own
        user.generate_random(NumberOfBytes=8)
        with pytest.raises(ClientError) as throttled:
            user.generate_random(NumberOfBytes=8)
        assert code(throttled) == "ThrottlingException"
        assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        server.client().describe_key(KeyId=key)


def test_a_passphrase_keystore_is_served_only_with_its_passphrase_in_the_environment(tmp_path: Path) -> None:
    import subprocess
    import sys

    KeyStore(tmp_path / "k.db", passphrase="correct horse battery staple").close()
    env = {k: v for k, v in os.environ.items() if k != "ENVELOPE_KEYSTORE_PASSPHRASE"}
    done = subprocess.run([sys.executable, "-m", "envelope", "keys", "serve", "--port", "0", "--keystore",
                           str(tmp_path / "k.db")], capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stdout == ""
    assert "ENVELOPE_KEYSTORE_PASSPHRASE" in done.stderr and "Traceback" not in done.stderr
