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
from . import kms_shapes as aws_json
from .keys_common import KEY_HELP, OUTPUT, add_action, aws_file, emit, open_store, read_input, write_bytes

EXIT_INVALID = 4  # as for any failed authentication (see envelope.cli.main)

_IN = (["--in", "--message"], {"dest": "input", "metavar": "FILE", "type": aws_file,
                               "help": "the message, FILE or fileb://FILE (default: stdin)"})
_MESSAGE_TYPE = (["--message-type"], {"choices": ["RAW", "DIGEST"], "default": "RAW",
                                      "help": "RAW message (default) or its DIGEST"})


def register(actions: Any) -> None:
    add = functools.partial(add_action, actions)

    signing = (["--algorithm", "--signing-algorithm"], {"required": True, "metavar": "ALG",
                                                        "help": "e.g. RSASSA_PSS_SHA_256, ECDSA_SHA_256"})
    mac = (["--algorithm", "--mac-algorithm"], {"required": True, "metavar": "ALG",
                                                "help": "HMAC_SHA_256, HMAC_SHA_384 or HMAC_SHA_512"})
    add("public-key", cmd_public_key, "export the public key of an RSA or ECC key (PEM, or DER with --der)",
        *OUTPUT, (["--der"], {"action": "store_true", "help": "DER instead of PEM"}), aws=["get-public-key"],
        key=KEY_HELP)
    add("sign", cmd_sign, "sign a message with an RSA or ECC SIGN_VERIFY key", _IN, *OUTPUT, _MESSAGE_TYPE, signing,
        key=KEY_HELP)
    add("verify", cmd_verify, "check a signature (exit code 0 valid, 4 invalid)", _IN, _MESSAGE_TYPE,
        (["--signature"], {"required": True, "metavar": "FILE", "type": aws_file}), signing, key=KEY_HELP)
    add("mac", cmd_mac, "make an HMAC with an HMAC key", _IN, *OUTPUT, mac, aws=["generate-mac"], key=KEY_HELP)
    add("verify-mac", cmd_verify_mac, "check an HMAC (exit code 0 valid, 4 invalid)", _IN,
        (["--mac"], {"required": True, "metavar": "FILE", "type": aws_file}), mac, key=KEY_HELP)


def cmd_public_key(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "GetPublicKey", KeyId=args.key))
        info = store.get_public_key(args.key)
    data = info.public_key
    if not args.der:
        data = serialization.load_der_public_key(data).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if args.output not in (None, "-") or args.der:
        return write_bytes(args, data)
    sys.stdout.write(data.decode("ascii"))  # PEM is text: fine on a terminal
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    message = _message(args)
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "Sign", KeyId=args.key, Message=message,
                                               SigningAlgorithm=args.algorithm, MessageType=args.message_type))
        signature = store.sign(args.key, message, args.algorithm, args.message_type)
    return write_bytes(args, signature)


def cmd_verify(args: argparse.Namespace) -> int:
    message = _message(args)
    with open_store(args) as store:
        valid = store.verify_signature(args.key, message, _read_small(args.signature), args.algorithm,
                                       args.message_type)
        key_arn = aws_json.wire_of(store).key_arn(store.resolve_key_id(args.key))
    # aws kms answers an invalid signature with an error; the exit code says so here, the JSON too.
    emit(args, {"KeyId": key_arn, "SignatureValid": valid, "SigningAlgorithm": args.algorithm},
         "valid" if valid else "invalid signature")
    return 0 if valid else EXIT_INVALID


def cmd_mac(args: argparse.Namespace) -> int:
    message = _message(args)
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "GenerateMac", KeyId=args.key, Message=message,
                                               MacAlgorithm=args.algorithm))
        mac = store.generate_mac(args.key, message, args.algorithm)
    return write_bytes(args, mac)


def cmd_verify_mac(args: argparse.Namespace) -> int:
    message = _message(args)
    with open_store(args) as store:
        valid = store.verify_mac(args.key, message, _read_small(args.mac), args.algorithm)
        key_arn = aws_json.wire_of(store).key_arn(store.resolve_key_id(args.key))
    emit(args, {"KeyId": key_arn, "MacValid": valid, "MacAlgorithm": args.algorithm},
         "valid" if valid else "invalid MAC")
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
