"""``envelope keys public-key|sign|verify|mac|verify-mac``: RSA, ECC and HMAC keys from the command line.

Messages are read raw from ``--in FILE`` (default stdin), at most 4096 bytes
(the KMS limit; sign a ``--message-type DIGEST`` for larger data).  Outputs
are raw to ``-o FILE`` or stdout, or base64 in ``--json``.  ``verify`` and
``verify-mac`` answer with their exit code: 0 valid, 4 invalid, as
authentication failures are everywhere else.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from cryptography.hazmat.primitives import serialization

from ..kms.crypto.asymmetric import MAX_MESSAGE_BYTES
from .keys_common import OUTPUT, add_action, b64, emit, open_store, read_input, write_bytes

EXIT_INVALID = 4  # as for any failed authentication (see envelope.cli.main)

_KEY = (["key"], {"metavar": "KEY", "help": "key id, key ARN or alias/NAME"})
_IN = (["--in"], {"dest": "input", "metavar": "FILE", "help": "the message (default: stdin)"})
_MESSAGE_TYPE = (["--message-type"], {"choices": ["RAW", "DIGEST"], "default": "RAW",
                                      "help": "RAW message (default) or its DIGEST"})


def register(actions: Any) -> None:
    add = functools.partial(add_action, actions)

    add("public-key", cmd_public_key, "export the public key of an RSA or ECC key (PEM, or DER with --der)", _KEY,
        *OUTPUT, (["--der"], {"action": "store_true", "help": "DER instead of PEM"}))
    add("sign", cmd_sign, "sign a message with an RSA or ECC SIGN_VERIFY key", _KEY, _IN, *OUTPUT, _MESSAGE_TYPE,
        (["--algorithm"], {"required": True, "metavar": "ALG", "help": "e.g. RSASSA_PSS_SHA_256, ECDSA_SHA_256"}))
    add("verify", cmd_verify, "check a signature (exit code 0 valid, 4 invalid)", _KEY, _IN, _MESSAGE_TYPE,
        (["--signature"], {"required": True, "metavar": "FILE"}),
        (["--algorithm"], {"required": True, "metavar": "ALG"}))
    add("mac", cmd_mac, "make an HMAC with an HMAC key", _KEY, _IN, *OUTPUT,
        (["--algorithm"], {"required": True, "metavar": "ALG", "help": "HMAC_SHA_256, HMAC_SHA_384 or HMAC_SHA_512"}))
    add("verify-mac", cmd_verify_mac, "check an HMAC (exit code 0 valid, 4 invalid)", _KEY, _IN,
        (["--mac"], {"required": True, "metavar": "FILE"}),
        (["--algorithm"], {"required": True, "metavar": "ALG"}))


def cmd_public_key(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        info = store.get_public_key(args.key)
    data = info.public_key
    if not args.der:
        data = serialization.load_der_public_key(data).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    as_json = {"key_id": info.key_id, "key_spec": info.key_spec, "key_usage": info.key_usage,
               "public_key": b64(info.public_key), "encryption_algorithms": list(info.encryption_algorithms),
               "signing_algorithms": list(info.signing_algorithms)}
    if args.json or args.output not in (None, "-") or args.der:
        return write_bytes(args, data, as_json)  # type: ignore[arg-type]
    sys.stdout.write(data.decode("ascii"))  # PEM is text: fine on a terminal
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    message = _message(args)
    with open_store(args) as store:
        signature = store.sign(args.key, message, args.algorithm, args.message_type)
    return write_bytes(args, signature, {"key_id": args.key, "signature": b64(signature),
                                    "signing_algorithm": args.algorithm})


def cmd_verify(args: argparse.Namespace) -> int:
    message = _message(args)
    with open_store(args) as store:
        valid = store.verify_signature(args.key, message, _read_small(args.signature), args.algorithm,
                                       args.message_type)
    emit(args, {"key_id": args.key, "signature_valid": valid}, "valid" if valid else "invalid signature")
    return 0 if valid else EXIT_INVALID


def cmd_mac(args: argparse.Namespace) -> int:
    message = _message(args)
    with open_store(args) as store:
        mac = store.generate_mac(args.key, message, args.algorithm)
    return write_bytes(args, mac, {"key_id": args.key, "mac": b64(mac), "mac_algorithm": args.algorithm})


def cmd_verify_mac(args: argparse.Namespace) -> int:
    message = _message(args)
    with open_store(args) as store:
        valid = store.verify_mac(args.key, message, _read_small(args.mac), args.algorithm)
    emit(args, {"key_id": args.key, "mac_valid": valid}, "valid" if valid else "invalid MAC")
    return 0 if valid else EXIT_INVALID


def _read_small(path: str) -> bytes:
    """A signature or MAC file, raw: at most a few hundred bytes, so reading stops at 4 KiB."""
    with open(path, "rb") as fh:
        return fh.read(4096)


def _message(args: argparse.Namespace) -> bytes:
    signing = args.handler in (cmd_sign, cmd_verify)
    return read_input(args, MAX_MESSAGE_BYTES,
                       "the message is over {limit} bytes: sign its digest instead (--message-type DIGEST)"
                       if signing else "the message is over {limit} bytes, the most a MAC takes")
