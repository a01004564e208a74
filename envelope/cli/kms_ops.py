"""``envelope keys encrypt|decrypt|re-encrypt|generate-data-key|generate-random``: the KMS's crypto calls.

For scripts and for poking at the keystore by hand, like ``aws kms encrypt``.
Inputs are read raw from ``--in FILE`` (default stdin) and are small by nature
(a blob, or at most 4096 bytes of plaintext), so reading stops just past the
largest valid size instead of trusting the input to end.  Outputs are raw
bytes to ``-o FILE`` or stdout, refused on a terminal (binary would garble it;
use ``--json``, which carries bytes as base64).  ``-o FILE`` is written as every
output is (:func:`envelope.atomic.atomic_output`): mode 0600, since these bytes are
often secrets (plaintext, random key material), never through a symlink planted
there, and never over an existing file without ``--force``.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from ..context import parse_pairs
from ..exceptions import UsageError
from ..kms.crypto import blob as _blob
from ..kms.model.keys import DATA_KEY_SPECS
from .keys_common import OUTPUT, add_action, b64, emit, open_store, read_input, wipe, write_bytes

_CONTEXT = (["--context"], {"action": "append", "default": [], "metavar": "K=V",
                            "help": "encryption context pair (repeatable)"})
_IN = (["--in"], {"dest": "input", "metavar": "FILE", "help": "read from FILE (default: stdin)"})


def register(actions: Any) -> None:
    action = functools.partial(add_action, actions)

    key = (["key"], {"metavar": "KEY", "help": "key id, key ARN or alias/NAME"})
    rsa = (["--algorithm"], {"metavar": "ALG", "help": "with an RSA key: RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1"})
    action("encrypt", cmd_encrypt, "encrypt up to 4096 bytes under KEY (larger data: envelope encrypt-file)",
           key, _IN, *OUTPUT, _CONTEXT, rsa)
    action("decrypt", cmd_decrypt, "decrypt a ciphertext blob (it names its own key)", _IN, *OUTPUT, _CONTEXT,
           (["--key"], {"dest": "expected", "metavar": "KEY", "help": "refuse a blob of any other key"}), rsa)
    action("re-encrypt", cmd_re_encrypt, "re-encrypt a blob under another key or context, or the newest backing key",
           (["--to"], {"required": True, "metavar": "KEY", "help": "destination key"}), _IN, *OUTPUT, _CONTEXT,
           (["--destination-context"], {"action": "append", "default": None, "metavar": "K=V",
                                        "help": "context of the new blob (default: the same as --context)"}),
           (["--source-key"], {"metavar": "KEY", "help": "refuse a blob of any other key"}))
    action("generate-data-key", cmd_generate_data_key, "make a data key: plaintext and sealed under KEY",
           key, _CONTEXT,
           (["--key-spec"], {"choices": sorted(DATA_KEY_SPECS), "help": "AES_256 (default) or AES_128"}),
           (["--bytes"], {"type": int, "metavar": "N", "help": "N bytes (1-1024) instead of a key spec"}),
           (["--without-plaintext"], {"action": "store_true", "help": "only the sealed data key"}))
    action("generate-random", cmd_generate_random, "random bytes from the OS's CSPRNG",
           (["count"], {"type": int, "metavar": "N", "help": "how many bytes, 1-1024"}), *OUTPUT)


def cmd_encrypt(args: argparse.Namespace) -> int:
    plaintext = bytearray(read_input(args, _blob.MAX_PLAINTEXT_SIZE, _TOO_LARGE_PLAINTEXT))
    try:
        with open_store(args) as store:
            if args.algorithm:  # RSA-OAEP to an asymmetric key: no blob header, no context
                if args.context:
                    raise UsageError("RSA encryption takes no encryption context")
                sealed = store.encrypt_asymmetric(args.key, bytes(plaintext), args.algorithm)
                return write_bytes(args, sealed, {"key_id": args.key, "ciphertext_blob": b64(sealed),
                                             "encryption_algorithm": args.algorithm})
            sealed = store.encrypt(args.key, plaintext, parse_pairs(args.context))
    finally:
        wipe(plaintext)
    return write_bytes(args, sealed, {"key_id": _blob.parse(sealed).key_id, "ciphertext_blob": b64(sealed)})


def cmd_decrypt(args: argparse.Namespace) -> int:
    data = read_input(args, _blob.MAX_BLOB_SIZE, _TOO_LARGE_BLOB)
    with open_store(args) as store:
        if args.algorithm:
            if not args.expected:
                raise UsageError("decrypting with an RSA key needs --key (an RSA ciphertext does not name its key)")
            plaintext, key_id = store.decrypt_asymmetric(args.expected, data, args.algorithm), args.expected
        else:
            plaintext, key_id = store.decrypt(data, parse_pairs(args.context), expected_key_id=args.expected)
    try:
        return write_bytes(args, plaintext, {"key_id": key_id, "plaintext": b64(plaintext)})
    finally:
        wipe(plaintext)


def cmd_re_encrypt(args: argparse.Namespace) -> int:
    data = read_input(args, _blob.MAX_BLOB_SIZE, _TOO_LARGE_BLOB)
    dest_ctx = None if args.destination_context is None else parse_pairs(args.destination_context)
    with open_store(args) as store:
        sealed, source, dest = store.re_encrypt(data, args.to, parse_pairs(args.context), dest_ctx,
                                                expected_source_key_id=args.source_key)
    return write_bytes(args, sealed, {"source_key_id": source, "key_id": dest, "ciphertext_blob": b64(sealed)})


def cmd_generate_data_key(args: argparse.Namespace) -> int:
    ctx = parse_pairs(args.context)
    with open_store(args) as store:
        if args.without_plaintext:
            sealed, key_id = store.generate_data_key_without_plaintext(args.key, ctx, args.bytes,
                                                                       key_spec=args.key_spec)
            return emit(args, {"key_id": key_id, "ciphertext_blob": b64(sealed)},
                        [f"key_id {key_id}", f"ciphertext_blob {b64(sealed)}"])
        plaintext, sealed, key_id = store.generate_data_key(args.key, ctx, args.bytes, key_spec=args.key_spec)
    try:
        # The data key is the point of this call, as with aws kms generate-data-key: it goes to stdout only.
        return emit(args, {"key_id": key_id, "plaintext": b64(plaintext), "ciphertext_blob": b64(sealed)},
                    [f"key_id {key_id}", f"plaintext {b64(plaintext)}", f"ciphertext_blob {b64(sealed)}"])
    finally:
        wipe(plaintext)


def cmd_generate_random(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        data = store.generate_random(args.count)
    return write_bytes(args, data, {"random": b64(data)})


_TOO_LARGE_PLAINTEXT = ("the input is over {limit} bytes: Encrypt takes at most {limit}; "
                        "use envelope encrypt-file for larger data")
_TOO_LARGE_BLOB = "the input is over {limit} bytes, larger than any ciphertext blob"


