"""``envelope keys import-parameters|import-material|import|delete-material``: bring your own key material.

The files are those of AWS KMS's documented flow, so the same OpenSSL
commands wrap the material for either: ``WrappingPublicKey.bin`` (the RSA
public key, DER) and ``ImportToken.bin`` from ``import-parameters``; the
material wrapped with ``openssl pkeyutl`` goes to ``import-material``.
``import`` does all of it from a raw 32-byte key file in one step.
"""

from __future__ import annotations

import argparse
import functools
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..atomic import atomic_output, check_destination
from ..exceptions import UsageError
from ..kms.operations.imports import WRAPPING_ALGORITHMS, WRAPPING_KEY_SPECS, oaep_padding
from ..kms.storage.paths import require_private_mode
from ..pipeline import write_all
from . import kms_shapes as aws_json
from .keys_common import add_action, aws_file, emit, open_store

PUBLIC_KEY_FILE = "WrappingPublicKey.bin"
TOKEN_FILE = "ImportToken.bin"
_MAX_INPUT = 16 * 1024  # wrapped material and tokens are a few hundred bytes

_KEY = "key id, key ARN or alias/NAME (created with --origin EXTERNAL)"
_ALGORITHM = (["--wrapping-algorithm"], {"choices": list(WRAPPING_ALGORITHMS), "default": "RSAES_OAEP_SHA_256",
                                         "help": "how the material is wrapped (default RSAES_OAEP_SHA_256)"})
_SPEC = (["--wrapping-key-spec"], {"choices": list(WRAPPING_KEY_SPECS), "default": "RSA_2048",
                                   "help": "size of the RSA wrapping key (default RSA_2048)"})
_VALID_TO = (["--valid-to"], {"metavar": "TIME", "help": "the material expires then (ISO 8601); default: never"})


def register(actions: Any) -> None:
    add = functools.partial(add_action, actions)

    add("import-parameters", cmd_import_parameters,
        f"write {PUBLIC_KEY_FILE} and {TOKEN_FILE} (valid 24 hours) for importing key material",
        _ALGORITHM, _SPEC, (["-o", "--output-dir"], {"required": True, "metavar": "DIR"}),
        (["--force"], {"action": "store_true", "help": f"overwrite {PUBLIC_KEY_FILE} and {TOKEN_FILE} in DIR"}),
        aws=["get-parameters-for-import"], key=_KEY)
    add("import-material", cmd_import_material, "import key material wrapped under the import parameters",
        (["--material", "--encrypted-key-material"], {"required": True, "metavar": "FILE", "type": aws_file,
                                                      "help": "the wrapped (encrypted) key material"}),
        (["--token", "--import-token"], {"required": True, "metavar": "FILE", "type": aws_file, "help": TOKEN_FILE}),
        _VALID_TO, aws=["import-key-material"], key=_KEY)
    add("import", cmd_import, "import a raw 256-bit key file in one step (parameters, wrapping, import)",
        (["--raw-key"], {"required": True, "metavar": "FILE", "help": "32 raw bytes"}), _ALGORITHM, _SPEC, _VALID_TO,
        key=_KEY)
    add("delete-material", cmd_delete_material, "delete imported key material now (the key waits for it again)",
        aws=["delete-imported-key-material"], key=_KEY)


def cmd_import_parameters(args: argparse.Namespace) -> int:
    out = Path(args.output_dir)
    if not out.is_dir():
        raise UsageError(f"--output-dir {str(out)!r} is not a directory")
    for name in (PUBLIC_KEY_FILE, TOKEN_FILE):  # both refused before either is written
        check_destination(str(out / name), args.force)
    with open_store(args) as store:
        params = store.get_parameters_for_import(args.key, args.wrapping_algorithm, args.wrapping_key_spec)
    for name, content in ((PUBLIC_KEY_FILE, params.public_key), (TOKEN_FILE, params.import_token)):
        with atomic_output(str(out / name), force=args.force) as fh:
            write_all(fh, memoryview(content))
    if args.json:  # aws kms's answer: the files' contents in base64
        return aws_json.show({"KeyId": aws_json.wire_of(store).key_arn(params.key_id), "ImportToken": params.import_token,
                              "PublicKey": params.public_key, "ParametersValidTo": params.parameters_valid_to})
    return emit(args, {}, [f"wrote {out / PUBLIC_KEY_FILE} and {out / TOKEN_FILE} for key {params.key_id}",
                             f"wrap with {params.wrapping_algorithm}; valid until {params.parameters_valid_to}"])


def cmd_import_material(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.import_key_material(args.key, _read(args.token), _read(args.material), args.valid_to)
        if args.json:
            return aws_json.show({"KeyId": aws_json.wire_of(store).key_arn(store.resolve_key_id(args.key))})
    return emit(args, {}, f"key material imported into {args.key}")


def cmd_import(args: argparse.Namespace) -> int:
    raw = bytearray(_read(args.raw_key, secret="the raw key file"))
    try:
        if len(raw) != 32:
            raise UsageError(f"--raw-key must hold 32 raw bytes (a 256-bit key), not {len(raw)}")
        with open_store(args) as store:
            params = store.get_parameters_for_import(args.key, args.wrapping_algorithm, args.wrapping_key_spec)
            public = serialization.load_der_public_key(params.public_key)
            assert isinstance(public, rsa.RSAPublicKey)
            wrapped = public.encrypt(bytes(raw), oaep_padding(args.wrapping_algorithm))
            store.import_key_material(args.key, params.import_token, wrapped, args.valid_to)
    finally:
        raw[:] = bytes(len(raw))
    return emit(args, {"KeyId": params.key_id, "imported": True}, f"key material imported into {params.key_id}")


def cmd_delete_material(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.delete_imported_key_material(args.key)
        if args.json:
            return aws_json.show({"KeyId": aws_json.wire_of(store).key_arn(store.resolve_key_id(args.key))})
    return emit(args, {}, f"imported key material of {args.key} deleted")


def _read(path: str, secret: str | None = None) -> bytes:
    """The file's first _MAX_INPUT bytes.  A *secret* file others could read is refused, as a
    ``raw-aes:`` key file is: a key already exposed must not become a master key."""
    with open(path, "rb") as fh:
        if secret is not None:
            st = os.fstat(fh.fileno())
            if stat.S_ISREG(st.st_mode):  # a pipe (<(...), -) has no mode worth checking
                require_private_mode(st.st_mode, path, secret, "key material")
        return fh.read(_MAX_INPUT)
