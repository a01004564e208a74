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
from . import kms_shapes as aws_json
from .keys_common import KEY_HELP, OUTPUT, add_action, aws_file, b64, either, emit, key_reference, open_store, \
    read_input, wipe, write_bytes

_CONTEXT = (["--context"], {"action": "append", "default": [], "metavar": "K=V",
                            "help": "encryption context pair (repeatable)"})
_IN = (["--in"], {"dest": "input", "metavar": "FILE", "type": aws_file, "help": "read from FILE (default: stdin)"})
_BLOB_IN = (["--in", "--ciphertext-blob"], {"dest": "input", "metavar": "FILE", "type": aws_file,
                                            "help": "read the blob from FILE or fileb://FILE (default: stdin)"})


def register(actions: Any) -> None:
    action = functools.partial(add_action, actions)

    rsa = (["--algorithm", "--encryption-algorithm"],
           {"metavar": "ALG", "help": "with an RSA key: RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1"})
    action("encrypt", cmd_encrypt, "encrypt up to 4096 bytes under KEY (larger data: envelope encrypt-file)",
           (["--in", "--plaintext"], {"dest": "input", "metavar": "FILE", "type": aws_file,
                                      "help": "read from FILE or fileb://FILE (default: stdin)"}),
           *OUTPUT, _CONTEXT, rsa, key=KEY_HELP)
    action("decrypt", cmd_decrypt, "decrypt a ciphertext blob (it names its own key)", _BLOB_IN, *OUTPUT, _CONTEXT,
           (["--key", "--key-id"], {"dest": "expected", "metavar": "KEY", "type": key_reference,
                                    "help": "refuse a blob of any other key"}), rsa)
    action("re-encrypt", cmd_re_encrypt, "re-encrypt a blob under another key or context, or the newest backing key",
           (["--to", "--destination-key-id"], {"required": True, "metavar": "KEY", "type": key_reference,
                                               "help": "destination key"}), _BLOB_IN, *OUTPUT, _CONTEXT,
           (["--destination-context"], {"action": "append", "default": None, "metavar": "K=V",
                                        "help": "context of the new blob (default: the same as --context)"}),
           (["--source-key", "--source-key-id"], {"metavar": "KEY", "type": key_reference,
                                                  "help": "refuse a blob of any other key"}))
    action("generate-data-key", cmd_generate_data_key, "make a data key: plaintext and sealed under KEY",
           _CONTEXT,
           (["--key-spec"], {"choices": sorted(DATA_KEY_SPECS), "help": "AES_256 (default) or AES_128"}),
           (["--bytes", "--number-of-bytes"], {"type": int, "metavar": "N",
                                               "help": "N bytes (1-1024) instead of a key spec"}),
           (["--without-plaintext"], {"action": "store_true", "help": "only the sealed data key (what "
                                                                      "generate-data-key-without-plaintext does)"}),
           aws=[WITHOUT_PLAINTEXT], key=KEY_HELP)
    p = action("generate-random", cmd_generate_random, "random bytes from the OS's CSPRNG", *OUTPUT)
    either(p, "count", "N", ["--number-of-bytes"], "how many bytes, 1-1024", type=int)


#: aws kms's verb for ``generate-data-key --without-plaintext``.
WITHOUT_PLAINTEXT = "generate-data-key-without-plaintext"


def cmd_encrypt(args: argparse.Namespace) -> int:
    plaintext = bytearray(read_input(args, _blob.MAX_PLAINTEXT_SIZE, _TOO_LARGE_PLAINTEXT))
    try:
        if args.algorithm and args.context:  # RSA-OAEP to an asymmetric key: no blob header, no context
            raise UsageError("RSA encryption takes no encryption context")
        with open_store(args) as store:
            if args.json:
                return aws_json.show(aws_json.call(store, "Encrypt", KeyId=args.key, Plaintext=plaintext,
                                                   EncryptionContext=parse_pairs(args.context),
                                                   EncryptionAlgorithm=args.algorithm))
            if args.algorithm:
                return write_bytes(args, store.encrypt_asymmetric(args.key, bytes(plaintext), args.algorithm))
            sealed = store.encrypt(args.key, plaintext, parse_pairs(args.context))
    finally:
        wipe(plaintext)
    return write_bytes(args, sealed)


def cmd_decrypt(args: argparse.Namespace) -> int:
    data = read_input(args, _blob.MAX_BLOB_SIZE, _TOO_LARGE_BLOB)
    with open_store(args) as store:
        if args.json:
            answer = aws_json.call(store, "Decrypt", CiphertextBlob=data, EncryptionContext=parse_pairs(args.context),
                                   KeyId=args.expected, EncryptionAlgorithm=args.algorithm)
            try:
                return aws_json.show(answer)
            finally:
                wipe(answer["Plaintext"])  # the keystore's own buffer
        if args.algorithm:
            if not args.expected:
                raise UsageError("decrypting with an RSA key needs --key (an RSA ciphertext does not name its key)")
            plaintext = store.decrypt_asymmetric(args.expected, data, args.algorithm)
        else:
            plaintext, _ = store.decrypt(data, parse_pairs(args.context), expected_key_id=args.expected)
    try:
        return write_bytes(args, plaintext)
    finally:
        wipe(plaintext)


def cmd_re_encrypt(args: argparse.Namespace) -> int:
    data = read_input(args, _blob.MAX_BLOB_SIZE, _TOO_LARGE_BLOB)
    source_ctx = parse_pairs(args.context)
    dest_ctx = source_ctx if args.destination_context is None else parse_pairs(args.destination_context)
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "ReEncrypt", CiphertextBlob=data, DestinationKeyId=args.to,
                                               SourceEncryptionContext=source_ctx,
                                               DestinationEncryptionContext=dest_ctx, SourceKeyId=args.source_key))
        sealed, _, _ = store.re_encrypt(data, args.to, source_ctx, dest_ctx, expected_source_key_id=args.source_key)
    return write_bytes(args, sealed)


def cmd_generate_data_key(args: argparse.Namespace) -> int:
    ctx = parse_pairs(args.context)
    without_plaintext = args.without_plaintext or args.keys_command == WITHOUT_PLAINTEXT
    with open_store(args) as store:
        if args.json:
            operation = "GenerateDataKeyWithoutPlaintext" if without_plaintext else "GenerateDataKey"
            answer = aws_json.call(store, operation, KeyId=args.key, EncryptionContext=ctx,
                                   NumberOfBytes=args.bytes, KeySpec=args.key_spec)
            try:
                # The data key is the point of this call, as with aws kms generate-data-key: stdout only.
                return aws_json.show(answer)
            finally:
                if "Plaintext" in answer:
                    wipe(answer["Plaintext"])
        if without_plaintext:
            sealed, key_id = store.generate_data_key_without_plaintext(args.key, ctx, args.bytes,
                                                                       key_spec=args.key_spec)
            return emit(args, {}, [f"key_id {key_id}", f"ciphertext_blob {b64(sealed)}"])
        plaintext, sealed, key_id = store.generate_data_key(args.key, ctx, args.bytes, key_spec=args.key_spec)
    try:
        return emit(args, {}, [f"key_id {key_id}", f"plaintext {b64(plaintext)}", f"ciphertext_blob {b64(sealed)}"])
    finally:
        wipe(plaintext)


def cmd_generate_random(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "GenerateRandom", NumberOfBytes=args.count))
        data = store.generate_random(args.count)
    return write_bytes(args, data)


_TOO_LARGE_PLAINTEXT = ("the input is over {limit} bytes: Encrypt takes at most {limit}; "
                        "use envelope encrypt-file for larger data")
_TOO_LARGE_BLOB = "the input is over {limit} bytes, larger than any ciphertext blob"


