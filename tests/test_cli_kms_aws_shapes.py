"""``envelope keys`` answers to ``aws kms``: its verbs, its option names and, with --json, its response shapes.

The shapes are checked against botocore's KMS service model, the document the
AWS CLI is generated from: every member ``--json`` prints is one AWS's
response has, typed as AWS types it (timestamps ISO 8601 with a zone, blobs
base64, enumerations from AWS's lists), and the members scripts read are
there, so a ``jq`` script written against ``aws kms`` reads these unchanged.
One keystore serves the whole module (keys made once); each case makes what
it consumes.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from envelope.cli.main import EXIT_OK, EXIT_USAGE, build_parser, main
from envelope.server.operations import OPERATIONS

botocore_session = pytest.importorskip("botocore.session")

MODEL = botocore_session.get_session().get_service_model("kms")
Capsys = pytest.CaptureFixture[str]


@dataclass
class World:
    root: Path
    keystore: str

    def run(self, capsys: Capsys, *argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["keys", *argv, "--keystore", self.keystore])
        out, err = capsys.readouterr()
        return code, out, err

    def ok(self, capsys: Capsys, *argv: str) -> str:
        code, out, err = self.run(capsys, *argv)
        assert code == EXIT_OK, err
        return out

    def new_key(self, capsys: Capsys, *extra: str) -> str:
        return str(json.loads(self.ok(capsys, "create-key", *extra, "--json"))["KeyMetadata"]["KeyId"])

    def file(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return f"fileb://{self.root / name}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("aws-shapes")
    w = World(root, str(root / "keystore.db"))
    for argv in (["create", "--alias", "alias/sym", "--tag", "team=a"],
                 ["create", "--spec", "ECC_NIST_P256", "--usage", "SIGN_VERIFY", "--alias", "alias/sign"],
                 ["create", "--spec", "HMAC_256", "--alias", "alias/hmac"],
                 ["create", "--multi-region", "--alias", "alias/mrk"]):
        assert main(["keys", *argv, "--keystore", w.keystore]) == EXIT_OK
    (root / "msg").write_bytes(b"a message")
    return w


# -- the cases: every operation the keystore implements, spelled as aws kms spells it ----------------

Argv = Callable[[World, Capsys], list[str]]


def _encrypted(w: World, capsys: Capsys) -> str:
    w.ok(capsys, "encrypt", "--key-id", "alias/sym", "--plaintext", w.file("pt", b"hello"), "-o",
         str(w.root / "blob"), "--force")
    return f"fileb://{w.root / 'blob'}"


def _grant(w: World, capsys: Capsys, *extra: str) -> dict[str, str]:
    return json.loads(w.ok(capsys, "create-grant", "--key-id", "alias/sym", "--grantee-principal", "bob",
                           "--operations", "Encrypt", *extra, "--json"))  # type: ignore[no-any-return]


def _scheduled(w: World, capsys: Capsys) -> str:
    key = w.new_key(capsys)
    w.ok(capsys, "schedule-key-deletion", "--key-id", key)
    return key


def _import_files(w: World, capsys: Capsys, key: str) -> list[str]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    params = json.loads(w.ok(capsys, "get-parameters-for-import", "--key-id", key, "-o", str(w.root), "--force",
                             "--json"))
    public = serialization.load_der_public_key(base64.b64decode(params["PublicKey"]))
    wrapped = public.encrypt(bytes(range(32)), padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    return ["--encrypted-key-material", w.file("material", wrapped), "--import-token",
            w.file("token", base64.b64decode(params["ImportToken"]))]


def _imported(w: World, capsys: Capsys) -> str:
    key = w.new_key(capsys, "--origin", "EXTERNAL")
    w.ok(capsys, "import-key-material", "--key-id", key, *_import_files(w, capsys, key))
    return key


def _policy(w: World, capsys: Capsys) -> str:
    policy = json.loads(w.ok(capsys, "get-key-policy", "--key-id", "alias/sym", "--policy-name", "default",
                             "--json"))["Policy"]
    (w.root / "policy.json").write_text(policy)
    return f"file://{w.root / 'policy.json'}"


def _signed(w: World, capsys: Capsys) -> str:
    w.ok(capsys, "sign", "--key-id", "alias/sign", "--message", f"fileb://{w.root / 'msg'}", "--signing-algorithm",
         "ECDSA_SHA_256", "-o", str(w.root / "sig"), "--force")
    return f"fileb://{w.root / 'sig'}"


def _maced(w: World, capsys: Capsys) -> str:
    w.ok(capsys, "generate-mac", "--key-id", "alias/hmac", "--message", f"fileb://{w.root / 'msg'}",
         "--mac-algorithm", "HMAC_SHA_256", "-o", str(w.root / "mac"), "--force")
    return f"fileb://{w.root / 'mac'}"


def _msg(w: World) -> str:
    return f"fileb://{w.root / 'msg'}"


#: AWS operation -> its argv (aws kms's verb and option names).
CASES: dict[str, Argv] = {
    "CreateKey": lambda w, c: ["create-key", "--description", "d", "--tags", "TagKey=t,TagValue=v"],
    "DescribeKey": lambda w, c: ["describe-key", "--key-id", "alias/sym"],
    "ListKeys": lambda w, c: ["list-keys"],
    "EnableKey": lambda w, c: ["enable-key", "--key-id", "alias/sym"],
    "DisableKey": lambda w, c: ["disable-key", "--key-id", w.new_key(c)],
    "UpdateKeyDescription": lambda w, c: ["update-key-description", "--key-id", "alias/sym", "--description", "new"],
    "CreateAlias": lambda w, c: ["create-alias", "--alias-name", "alias/made", "--target-key-id", w.new_key(c)],
    "UpdateAlias": lambda w, c: ["update-alias", "--alias-name", "alias/hmac", "--target-key-id",
                                 w.new_key(c, "--key-spec", "HMAC_256")],
    "DeleteAlias": lambda w, c: ["delete-alias", "--alias-name",
                                 w.ok(c, "create-alias", "--alias-name", "alias/gone", "--target-key-id",
                                      "alias/sym") and "alias/gone"],
    "ListAliases": lambda w, c: ["list-aliases"],
    "TagResource": lambda w, c: ["tag-resource", "--key-id", "alias/sym", "--tags", "TagKey=a,TagValue=b"],
    "UntagResource": lambda w, c: ["untag-resource", "--key-id", "alias/sym", "--tag-keys", "a"],
    "ListResourceTags": lambda w, c: ["list-resource-tags", "--key-id", "alias/sym"],
    "EnableKeyRotation": lambda w, c: ["enable-key-rotation", "--key-id", w.new_key(c),
                                       "--rotation-period-in-days", "90"],
    "DisableKeyRotation": lambda w, c: ["disable-key-rotation", "--key-id", "alias/sym"],
    "GetKeyRotationStatus": lambda w, c: ["get-key-rotation-status", "--key-id",
                                          w.ok(c, "enable-key-rotation", "--key-id", "alias/mrk") and "alias/mrk"],
    "RotateKeyOnDemand": lambda w, c: ["rotate-key-on-demand", "--key-id", "alias/sym"],
    "ListKeyRotations": lambda w, c: ["list-key-rotations", "--key-id",
                                      w.ok(c, "rotate-key-on-demand", "--key-id", "alias/sym") and "alias/sym"],
    "ScheduleKeyDeletion": lambda w, c: ["schedule-key-deletion", "--key-id", w.new_key(c),
                                         "--pending-window-in-days", "7"],
    "CancelKeyDeletion": lambda w, c: ["cancel-key-deletion", "--key-id", _scheduled(w, c)],
    "GetKeyPolicy": lambda w, c: ["get-key-policy", "--key-id", "alias/sym", "--policy-name", "default"],
    "PutKeyPolicy": lambda w, c: ["put-key-policy", "--key-id", "alias/sym", "--policy-name", "default",
                                  "--policy", _policy(w, c)],
    "ListKeyPolicies": lambda w, c: ["list-key-policies", "--key-id", "alias/sym"],
    "CreateGrant": lambda w, c: ["create-grant", "--key-id", "alias/sym", "--grantee-principal", "bob",
                                 "--operations", "Encrypt", "Decrypt", "--retiring-principal", "carol"],
    "ListGrants": lambda w, c: ["list-grants", "--key-id", "alias/sym"],
    "ListRetirableGrants": lambda w, c: ["list-retirable-grants", "--retiring-principal",
                                         _grant(w, c, "--retiring-principal", "dave") and "dave"],
    "RetireGrant": lambda w, c: ["retire-grant", "--grant-token", _grant(w, c)["GrantToken"]],
    "RevokeGrant": lambda w, c: ["revoke-grant", "--key-id", "alias/sym", "--grant-id", _grant(w, c)["GrantId"]],
    "GetParametersForImport": lambda w, c: ["get-parameters-for-import", "--key-id",
                                            w.new_key(c, "--origin", "EXTERNAL"), "--wrapping-algorithm",
                                            "RSAES_OAEP_SHA_256", "--wrapping-key-spec", "RSA_2048",
                                            "-o", str(w.root), "--force"],
    "ImportKeyMaterial": lambda w, c: ["import-key-material", "--key-id", (k := w.new_key(c, "--origin", "EXTERNAL")),
                                       *_import_files(w, c, k)],
    "DeleteImportedKeyMaterial": lambda w, c: ["delete-imported-key-material", "--key-id", _imported(w, c)],
    "ReplicateKey": lambda w, c: ["replicate-key", "--key-id", "alias/mrk", "--replica-region", "eu-west-1",
                                  "--replica-keystore", str(w.root / "replica.db")],
    "Encrypt": lambda w, c: ["encrypt", "--key-id", "alias/sym", "--plaintext", w.file("pt", b"hello")],
    "Decrypt": lambda w, c: ["decrypt", "--ciphertext-blob", _encrypted(w, c)],
    "ReEncrypt": lambda w, c: ["re-encrypt", "--ciphertext-blob", _encrypted(w, c), "--destination-key-id",
                               "alias/sym"],
    "GenerateDataKey": lambda w, c: ["generate-data-key", "--key-id", "alias/sym", "--key-spec", "AES_256"],
    "GenerateDataKeyWithoutPlaintext": lambda w, c: ["generate-data-key-without-plaintext", "--key-id", "alias/sym",
                                                     "--number-of-bytes", "16"],
    "GenerateRandom": lambda w, c: ["generate-random", "--number-of-bytes", "16"],
    "GetPublicKey": lambda w, c: ["get-public-key", "--key-id", "alias/sign"],
    "Sign": lambda w, c: ["sign", "--key-id", "alias/sign", "--message", _msg(w), "--message-type", "RAW",
                          "--signing-algorithm", "ECDSA_SHA_256"],
    "Verify": lambda w, c: ["verify", "--key-id", "alias/sign", "--message", _msg(w), "--signature", _signed(w, c),
                            "--signing-algorithm", "ECDSA_SHA_256"],
    "GenerateMac": lambda w, c: ["generate-mac", "--key-id", "alias/hmac", "--message", _msg(w),
                                 "--mac-algorithm", "HMAC_SHA_256"],
    "VerifyMac": lambda w, c: ["verify-mac", "--key-id", "alias/hmac", "--message", _msg(w), "--mac", _maced(w, c),
                               "--mac-algorithm", "HMAC_SHA_256"],
}

_METADATA = ["KeyId", "Arn", "KeyState", "CreationDate", "Enabled", "Description", "KeyUsage", "KeySpec", "Origin",
             "KeyManager", "AWSAccountId", "MultiRegion"]
#: The members scripts read (jq paths), which must be there: numbers index lists.
READ_BY_SCRIPTS: dict[str, list[str]] = {
    "CreateKey": [f"KeyMetadata.{m}" for m in _METADATA],
    "DescribeKey": [f"KeyMetadata.{m}" for m in _METADATA] + ["KeyMetadata.EncryptionAlgorithms"],
    "ListKeys": ["Keys.0.KeyId", "Keys.0.KeyArn", "Truncated"],
    "ListAliases": ["Aliases.0.AliasName", "Aliases.0.AliasArn", "Aliases.0.TargetKeyId"],
    "ListResourceTags": ["Tags.0.TagKey", "Tags.0.TagValue"],
    "GetKeyRotationStatus": ["KeyRotationEnabled", "KeyId", "RotationPeriodInDays", "NextRotationDate"],
    "RotateKeyOnDemand": ["KeyId"],
    "ListKeyRotations": ["Rotations.0.KeyId", "Rotations.0.RotationDate", "Rotations.0.RotationType"],
    "ScheduleKeyDeletion": ["KeyId", "DeletionDate", "KeyState", "PendingWindowInDays"],
    "CancelKeyDeletion": ["KeyId"],
    "GetKeyPolicy": ["Policy", "PolicyName"],
    "ListKeyPolicies": ["PolicyNames.0"],
    "CreateGrant": ["GrantId", "GrantToken"],
    "ListGrants": ["Grants.0.GrantId", "Grants.0.KeyId", "Grants.0.GranteePrincipal", "Grants.0.Operations"],
    "ListRetirableGrants": ["Grants.0.GrantId", "Grants.0.RetiringPrincipal"],
    "GetParametersForImport": ["KeyId", "ImportToken", "PublicKey", "ParametersValidTo"],
    "ReplicateKey": ["ReplicaKeyMetadata.KeyId", "ReplicaKeyMetadata.Arn", "ReplicaTags"],
    "Encrypt": ["CiphertextBlob", "KeyId", "EncryptionAlgorithm"],
    "Decrypt": ["Plaintext", "KeyId", "EncryptionAlgorithm"],
    "ReEncrypt": ["CiphertextBlob", "KeyId", "SourceKeyId"],
    "GenerateDataKey": ["CiphertextBlob", "Plaintext", "KeyId"],
    "GenerateDataKeyWithoutPlaintext": ["CiphertextBlob", "KeyId"],
    "GenerateRandom": ["Plaintext"],
    "GetPublicKey": ["KeyId", "PublicKey", "KeySpec", "KeyUsage", "SigningAlgorithms"],
    "Sign": ["KeyId", "Signature", "SigningAlgorithm"],
    "Verify": ["KeyId", "SignatureValid", "SigningAlgorithm"],
    "GenerateMac": ["KeyId", "Mac", "MacAlgorithm"],
    "VerifyMac": ["KeyId", "MacValid", "MacAlgorithm"],
}


def check_shape(value: Any, shape: Any, path: str) -> None:
    """*value* is what the AWS CLI prints for *shape*: known members only, each typed as AWS types it."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), path
        unknown = set(value) - set(shape.members)
        assert not unknown, f"{path}: {sorted(unknown)} are not members of AWS's {shape.name}"
        for name, item in value.items():
            check_shape(item, shape.members[name], f"{path}.{name}")
    elif kind == "list":
        assert isinstance(value, list), path
        for i, item in enumerate(value):
            check_shape(item, shape.member, f"{path}.{i}")
    elif kind == "map":
        assert isinstance(value, dict) and all(isinstance(v, str) for v in value.values()), path
    elif kind == "timestamp":  # the AWS CLI's ISO 8601, with its zone
        assert datetime.fromisoformat(value).utcoffset() is not None, (path, value)
    elif kind == "blob":
        assert base64.b64decode(value, validate=True), path
    elif kind == "boolean":
        assert isinstance(value, bool), path
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), path
    else:
        assert kind == "string" and isinstance(value, str), (path, kind)
        assert not shape.enum or value in shape.enum, f"{path}: {value!r} is none of AWS's {shape.enum}"


def member(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def test_every_operation_of_the_keystore_has_a_case_here() -> None:
    assert set(CASES) == set(OPERATIONS)


@pytest.mark.parametrize("operation", list(CASES))
def test_json_is_aws_response_shape(world: World, capsys: Capsys, operation: str) -> None:
    out = world.ok(capsys, *CASES[operation](world, capsys), "--json")
    shape = MODEL.operation_model(operation).output_shape
    if shape is None or not shape.members:  # aws kms prints nothing for these
        assert out == ""
        return
    doc = json.loads(out)
    check_shape(doc, shape, operation)
    for path in READ_BY_SCRIPTS.get(operation, []):
        member(doc, path)  # a KeyError or IndexError names what a script would miss


def test_every_member_that_ends_in_date_is_a_timestamp_and_back() -> None:
    """--json renders timestamps by their member names; botocore's model agrees for every output."""
    from envelope.cli.kms_shapes import is_timestamp

    def walk(shape: Any, seen: set[str]) -> None:
        if shape.name in seen:
            return
        seen.add(shape.name)
        if shape.type_name == "structure":
            for name, child in shape.members.items():
                if child.type_name in ("timestamp", "string", "integer", "long"):
                    assert is_timestamp(name) == (child.type_name == "timestamp"), (shape.name, name)
                walk(child, seen)
        elif shape.type_name == "list":
            walk(shape.member, seen)

    for operation in OPERATIONS:
        shape = MODEL.operation_model(operation).output_shape
        if shape is not None:
            walk(shape, set())


# -- verbs -----------------------------------------------------------------------------------------


def _kebab(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", operation).lower()


@functools.cache
def _parser() -> argparse.ArgumentParser:
    return build_parser(["keys"])  # parsing leaves it as it was: one for every case


def _keys_actions() -> dict[str, Any]:
    parser = _parser()
    keys = next(a for a in parser._actions if hasattr(a, "choices") and a.choices and "keys" in a.choices)
    sub = next(a for a in keys.choices["keys"]._actions if hasattr(a, "choices") and a.choices)
    return dict(sub.choices)


#: aws kms verb -> the envelope keys action it is another name of.
ALIASES = {
    "create-key": "create", "list-keys": "list", "describe-key": "describe",
    "update-key-description": "set-description", "enable-key": "enable", "disable-key": "disable",
    "enable-key-rotation": "enable-rotation", "disable-key-rotation": "disable-rotation",
    "get-key-rotation-status": "rotation-status", "list-key-rotations": "rotation-status",
    "rotate-key-on-demand": "rotate", "schedule-key-deletion": "schedule-deletion",
    "cancel-key-deletion": "cancel-deletion", "tag-resource": "tag", "untag-resource": "untag",
    "list-resource-tags": "tags", "replicate-key": "replicate", "get-key-policy": "get-policy",
    "put-key-policy": "put-policy", "list-key-policies": "policies", "get-public-key": "public-key",
    "generate-mac": "mac", "generate-data-key-without-plaintext": "generate-data-key",
    "get-parameters-for-import": "import-parameters", "import-key-material": "import-material",
    "delete-imported-key-material": "delete-material",
}


def test_every_operation_of_the_keystore_is_an_aws_verb_of_keys() -> None:
    actions = _keys_actions()
    assert {_kebab(op) for op in OPERATIONS} - set(actions) == set()


@pytest.mark.parametrize(("verb", "action"), sorted(ALIASES.items()))
def test_an_aws_verb_is_the_same_parser_as_its_action(verb: str, action: str) -> None:
    actions = _keys_actions()
    assert actions[verb] is actions[action]


def test_help_lists_an_action_once_with_its_aws_verb(capsys: Capsys) -> None:
    assert main(["keys", "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "describe (describe-key)" in out and out.count("describe-key") == 1


#: aws kms verbs that are actions of their own (the alias and grant verbs nest in envelope): both command
#: lines must parse to the same handler and the same values.
NESTED = [
    (["create-alias", "--alias-name", "alias/a", "--target-key-id", "k"], ["alias", "create", "alias/a", "k"]),
    (["update-alias", "--alias-name", "alias/a", "--target-key-id", "k"], ["alias", "update", "alias/a", "k"]),
    (["delete-alias", "--alias-name", "alias/a"], ["alias", "delete", "alias/a"]),
    (["list-aliases", "--key-id", "k"], ["alias", "list", "--key", "k"]),
    (["create-grant", "--key-id", "k", "--grantee-principal", "bob", "--operations", "Encrypt", "Decrypt"],
     ["grant", "create", "k", "--grantee", "bob", "--operations", "Encrypt,Decrypt"]),
    (["list-grants", "--key-id", "k", "--grantee-principal", "bob"], ["grant", "list", "k", "--grantee", "bob"]),
    (["retire-grant", "--grant-token", "t"], ["grant", "retire", "--token", "t"]),
    (["revoke-grant", "--key-id", "k", "--grant-id", "g"], ["grant", "revoke", "k", "g"]),
    (["list-retirable-grants", "--retiring-principal", "p"], ["grant", "retirable", "--retiring-principal", "p"]),
]


@pytest.mark.parametrize(("aws", "ours"), NESTED, ids=[a[0] for a, _ in NESTED])
def test_a_nested_verb_and_its_aws_verb_parse_alike(aws: list[str], ours: list[str]) -> None:
    def parsed(argv: list[str]) -> dict[str, Any]:
        values = vars(_parser().parse_args(["keys", *argv]))
        values.pop("keys_command"), values.pop("alias_command", None), values.pop("grant_command", None)
        if isinstance(values.get("operations"), list):  # space- or comma-separated: the same operations
            values["operations"] = ",".join(values["operations"]).split(",")
        return values

    assert parsed(aws) == parsed(ours)


# -- option names ----------------------------------------------------------------------------------


def test_key_is_a_positional_or_key_id_not_both_nor_neither(world: World, capsys: Capsys) -> None:
    by_id = world.ok(capsys, "describe-key", "--key-id", "alias/sym", "--json")
    assert world.ok(capsys, "describe", "alias/sym", "--json") == by_id
    assert world.ok(capsys, "describe", "local:alias/sym", "--json") == by_id  # encrypt-file's spelling
    code, out, err = world.run(capsys, "describe", "alias/sym", "--key-id", "alias/sym")
    assert code == EXIT_USAGE and out == "" and "not allowed with" in err
    code, out, err = world.run(capsys, "describe-key")
    assert code == EXIT_USAGE and "KEY --key-id is required" in err


def test_aws_tag_shorthand_is_checked(world: World, capsys: Capsys) -> None:
    code, _, err = world.run(capsys, "tag-resource", "--key-id", "alias/sym", "--tags", "Key=a,Value=b")
    assert code == EXIT_USAGE and err.startswith("envelope: error: ") and "TagKey=K,TagValue=V" in err
    code, _, err = world.run(capsys, "tag-resource", "--key-id", "alias/sym")
    assert code == EXIT_USAGE and "TagKey" in err


def test_aws_option_names_set_what_ours_set(world: World, capsys: Capsys) -> None:
    key = world.new_key(capsys)
    world.ok(capsys, "enable-key-rotation", "--key-id", key, "--rotation-period-in-days", "120")
    status = json.loads(world.ok(capsys, "rotation-status", key, "--json"))
    assert status["RotationPeriodInDays"] == 120
    plan = json.loads(world.ok(capsys, "schedule-key-deletion", "--key-id", key, "--pending-window-in-days", "8",
                               "--json"))
    assert plan["PendingWindowInDays"] == 8
    world.ok(capsys, "create-alias", "--alias-name", "alias/spelled", "--target-key-id", "alias/sym")
    listed = json.loads(world.ok(capsys, "list-aliases", "--key-id", "alias/sym", "--json"))["Aliases"]
    assert "alias/spelled" in [a["AliasName"] for a in listed]
    assert len(base64.b64decode(json.loads(world.ok(capsys, "generate-random", "--number-of-bytes", "7", "--json"))
                                ["Plaintext"])) == 7
    sealed = json.loads(world.ok(capsys, "encrypt", "--key-id", "alias/sym", "--plaintext",
                                 world.file("secret", b"round trip"), "--json"))
    blob = world.file("sealed", base64.b64decode(sealed["CiphertextBlob"]))
    opened = json.loads(world.ok(capsys, "decrypt", "--ciphertext-blob", blob, "--key-id", "alias/sym", "--json"))
    assert base64.b64decode(opened["Plaintext"]) == b"round trip" and opened["KeyId"] == sealed["KeyId"]


# -- --key without a scheme ------------------------------------------------------------------------


def test_a_key_without_scheme_is_the_local_keystore_key_and_said_once(world: World, capsys: Capsys,
                                                                      tmp_path: Path) -> None:
    world.ok(capsys, "create-alias", "--alias-name", "alias/noscheme", "--target-key-id", "alias/sym")
    src = tmp_path / "plain"
    src.write_bytes(b"file data")
    common = ["--keystore", world.keystore]
    for name in ("a", "b"):
        assert main(["encrypt-file", str(src), "-o", str(tmp_path / f"{name}.envelope"), "--key", "alias/noscheme",
                     *common]) == EXIT_OK
    err = capsys.readouterr().err
    assert err.count("key alias/noscheme has no scheme: using local:alias/noscheme") == 1, err
    assert main(["decrypt-file", str(tmp_path / "a.envelope"), "-o", str(tmp_path / "back"), "--key",
                 "local:alias/noscheme", *common]) == EXIT_OK
    assert (tmp_path / "back").read_bytes() == b"file data"
    assert capsys.readouterr().err == ""  # a scheme given: nothing to say


def test_the_no_scheme_notice_is_quiet_with_q(world: World, capsys: Capsys, tmp_path: Path) -> None:
    key = world.new_key(capsys)
    src = tmp_path / "plain"
    src.write_bytes(b"x")
    assert main(["encrypt-file", str(src), "--key", key, "-q", "--keystore", world.keystore]) == EXIT_OK
    assert capsys.readouterr().err == ""
    assert main(["decrypt-file", f"{src}.envelope", "-o", str(tmp_path / "back"), "--key", key, "-q",
                 "--keystore", world.keystore]) == EXIT_OK
    assert (tmp_path / "back").read_bytes() == b"x" and capsys.readouterr().err == ""
