"""Every KMS operation the server answers: AWS's request members in, AWS's response members out.

Each handler takes the keystore (already calling as the authenticated
principal), the parsed request (:mod:`.protocol` checked it against AWS's
shape) and the :class:`~.wire.Wire` naming, and returns the response members.
The keystore does the work, the checks and the audit row; handlers only
translate.  Where AWS's API and the keystore's defaults differ the wire gets
AWS's (ReEncrypt without a destination context binds none).  Operations the
keystore does not implement are absent, and answered as AWS answers an unknown
target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errors
from .operations_keys import KEY_OPERATIONS
from .wire import Wire

if TYPE_CHECKING:
    from ..kms.store import KeyStore

Handler = Callable[["KeyStore", dict[str, Any], Wire], dict[str, Any]]

SYMMETRIC = "SYMMETRIC_DEFAULT"


def _tokens(req: dict[str, Any]) -> tuple[str, ...]:
    return tuple(req.get("GrantTokens", ()))


def _symmetric_algorithm(req: dict[str, Any], member: str = "EncryptionAlgorithm") -> None:
    if req.get(member, SYMMETRIC) != SYMMETRIC:
        raise errors.InvalidKeyUsageException(f"{req[member]} is not an algorithm of a symmetric key")


def _no_extras(req: dict[str, Any]) -> None:
    if req.get("DryRun"):
        raise errors.UnsupportedOperationException("DryRun is not supported by this server")
    if req.get("Recipient"):
        raise errors.UnsupportedOperationException("Recipient (Nitro Enclaves attestation) is not supported")


def encrypt(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    _no_extras(req)
    ref = wire.ref(req["KeyId"])
    key_id, spec, _ = store.key_kind(ref)
    if spec != "SYMMETRIC_DEFAULT" and req.get("EncryptionAlgorithm", SYMMETRIC) != SYMMETRIC:
        blob = store.encrypt_asymmetric(ref, req["Plaintext"], req["EncryptionAlgorithm"])
        return {"CiphertextBlob": blob, "KeyId": wire.key_arn(key_id), "EncryptionAlgorithm": req["EncryptionAlgorithm"]}
    _symmetric_algorithm(req)
    blob = store.encrypt(ref, req["Plaintext"], req.get("EncryptionContext"), grant_tokens=_tokens(req))
    return {"CiphertextBlob": blob, "KeyId": wire.key_arn(key_id), "EncryptionAlgorithm": SYMMETRIC}


def decrypt(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    _no_extras(req)
    algorithm = req.get("EncryptionAlgorithm", SYMMETRIC)
    if algorithm != SYMMETRIC:
        if "KeyId" not in req:
            raise errors.ValidationException("KeyId is required to decrypt with an asymmetric key")
        ref = wire.ref(req["KeyId"])
        plaintext = store.decrypt_asymmetric(ref, req["CiphertextBlob"], algorithm)
        key_id = store.resolve_key_id(ref)
    else:
        expected = wire.ref(req["KeyId"]) if "KeyId" in req else None
        plaintext, key_id = store.decrypt(req["CiphertextBlob"], req.get("EncryptionContext"), expected,
                                          grant_tokens=_tokens(req))
    return {"KeyId": wire.key_arn(key_id), "Plaintext": plaintext, "EncryptionAlgorithm": algorithm}


def re_encrypt(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    _no_extras(req)
    _symmetric_algorithm(req, "SourceEncryptionAlgorithm")
    _symmetric_algorithm(req, "DestinationEncryptionAlgorithm")
    source = wire.ref(req["SourceKeyId"]) if "SourceKeyId" in req else None
    blob, source_id, dest_id = store.re_encrypt(
        req["CiphertextBlob"], wire.ref(req["DestinationKeyId"]), req.get("SourceEncryptionContext"),
        req.get("DestinationEncryptionContext", {}), expected_source_key_id=source, grant_tokens=_tokens(req))
    return {"CiphertextBlob": blob, "SourceKeyId": wire.key_arn(source_id), "KeyId": wire.key_arn(dest_id),
            "SourceEncryptionAlgorithm": SYMMETRIC, "DestinationEncryptionAlgorithm": SYMMETRIC}


def generate_data_key(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    _no_extras(req)
    plaintext, blob, key_id = store.generate_data_key(
        wire.ref(req["KeyId"]), req.get("EncryptionContext"), req.get("NumberOfBytes"), key_spec=req.get("KeySpec"),
        grant_tokens=_tokens(req))
    return {"CiphertextBlob": blob, "Plaintext": plaintext, "KeyId": wire.key_arn(key_id)}


def generate_data_key_without_plaintext(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    _no_extras(req)
    blob, key_id = store.generate_data_key_without_plaintext(
        wire.ref(req["KeyId"]), req.get("EncryptionContext"), req.get("NumberOfBytes"), key_spec=req.get("KeySpec"),
        grant_tokens=_tokens(req))
    return {"CiphertextBlob": blob, "KeyId": wire.key_arn(key_id)}


def generate_random(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    if req.get("Recipient") or req.get("CustomKeyStoreId"):
        raise errors.UnsupportedOperationException("Recipient and CustomKeyStoreId are not supported")
    return {"Plaintext": store.generate_random(req.get("NumberOfBytes", 32))}


def get_public_key(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    info = store.get_public_key(wire.ref(req["KeyId"]))
    return {"KeyId": wire.key_arn(info.key_id), "PublicKey": info.public_key, "KeySpec": info.key_spec,
            "CustomerMasterKeySpec": info.key_spec, "KeyUsage": info.key_usage,
            "EncryptionAlgorithms": list(info.encryption_algorithms) or None,
            "SigningAlgorithms": list(info.signing_algorithms) or None}


def sign(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    ref = wire.ref(req["KeyId"])
    signature = store.sign(ref, req["Message"], req["SigningAlgorithm"], req.get("MessageType", "RAW"))
    return {"KeyId": wire.key_arn(store.resolve_key_id(ref)), "Signature": signature,
            "SigningAlgorithm": req["SigningAlgorithm"]}


def verify(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    ref = wire.ref(req["KeyId"])
    valid = store.verify_signature(ref, req["Message"], req["Signature"], req["SigningAlgorithm"],
                                   req.get("MessageType", "RAW"))
    if not valid:  # AWS answers a bad signature with an error, not SignatureValid false
        raise errors.KMSInvalidSignatureException("")
    return {"KeyId": wire.key_arn(store.resolve_key_id(ref)), "SignatureValid": True,
            "SigningAlgorithm": req["SigningAlgorithm"]}


def generate_mac(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    ref = wire.ref(req["KeyId"])
    mac = store.generate_mac(ref, req["Message"], req["MacAlgorithm"])
    return {"KeyId": wire.key_arn(store.resolve_key_id(ref)), "Mac": mac, "MacAlgorithm": req["MacAlgorithm"]}


def verify_mac(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    ref = wire.ref(req["KeyId"])
    if not store.verify_mac(ref, req["Message"], req["Mac"], req["MacAlgorithm"]):
        raise errors.KMSInvalidMacException("")
    return {"KeyId": wire.key_arn(store.resolve_key_id(ref)), "MacValid": True, "MacAlgorithm": req["MacAlgorithm"]}


CRYPTO_OPERATIONS: dict[str, Handler] = {
    "Encrypt": encrypt,
    "Decrypt": decrypt,
    "ReEncrypt": re_encrypt,
    "GenerateDataKey": generate_data_key,
    "GenerateDataKeyWithoutPlaintext": generate_data_key_without_plaintext,
    "GenerateRandom": generate_random,
    "GetPublicKey": get_public_key,
    "Sign": sign,
    "Verify": verify,
    "GenerateMac": generate_mac,
    "VerifyMac": verify_mac,
}

#: Every operation the server implements, by AWS's name.
OPERATIONS: dict[str, Handler] = {**KEY_OPERATIONS, **CRYPTO_OPERATIONS}
