"""The AWS JSON 1.1 protocol of KMS: requests checked against AWS's own shapes, answers shaped like AWS's.

The shapes are botocore's KMS service model, the document every AWS SDK is
generated from, so what this server accepts and sends is by construction what
the SDKs send and parse: member names, types, required members, enumerations
and length limits.  A request is refused before it reaches the keystore when
it is not a JSON object (``SerializationException``, as AWS answers a body it
cannot read), has a member of the wrong type (also ``SerializationException``)
or breaks a constraint or names a member the operation does not have
(``ValidationException``).  Blobs travel base64-encoded; timestamps as epoch
seconds, the JSON protocol's encoding.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .errors import SerializationException, UnknownOperationException, ValidationException

#: The X-Amz-Target prefix of every KMS operation.
TARGET_PREFIX = "TrentService."
CONTENT_TYPE = "application/x-amz-json-1.1"
#: Nesting depth of a request document.  KMS's deepest input (a grant's constraints) is three deep.
MAX_DEPTH = 8


class ServiceModel:
    """botocore's KMS model, loaded once: botocore is imported by the server only."""

    def __init__(self) -> None:
        import botocore.session  # noqa: PLC0415 - the server extra's dependency, imported when serving

        self._model = botocore.session.get_session().get_service_model("kms")
        self.operation_names = frozenset(self._model.operation_names)

    def operation(self, target: str | None, implemented: Mapping[str, Any]) -> str:
        """The operation an ``X-Amz-Target`` header names, if this server implements it."""
        if not target or not target.startswith(TARGET_PREFIX):
            raise UnknownOperationException("")
        name = target[len(TARGET_PREFIX):]
        if name not in implemented or name not in self.operation_names:
            raise UnknownOperationException("")
        return name

    def parse_request(self, operation: str, body: bytes) -> dict[str, Any]:
        """The request document as Python values (blobs as bytes), or the AWS error refusing it."""
        if not body.strip():
            document: Any = {}
        else:
            try:
                document = json.loads(body, parse_constant=_no_constant)
            except (ValueError, RecursionError):
                raise SerializationException("the request body is not valid JSON") from None
        shape = self._model.operation_model(operation).input_shape
        if shape is None:
            return {}
        result = _parse(shape, document, "", 0)
        assert isinstance(result, dict)
        return result

    def render_response(self, operation: str, result: Mapping[str, Any]) -> bytes:
        """The response document: *result*'s members as the output shape types them."""
        shape = self._model.operation_model(operation).output_shape
        if shape is None:
            return b"{}"
        return json.dumps(_render(shape, result)).encode()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _where(path: str) -> str:
    return f" at '{path}'" if path else ""


def _parse(shape: Any, value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise SerializationException("the request document is nested too deeply")
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise SerializationException(f"expected an object{_where(path)}")
        unknown = sorted(set(value) - set(shape.members))
        if unknown:
            raise ValidationException(f"1 validation error detected: unknown member '{unknown[0][:64]}'"
                                      f"{_where(path)}")
        out = {}
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                out[name] = _parse(member, value[name], f"{path}.{name}" if path else name, depth + 1)
        for name in shape.required_members:
            if name not in out:
                raise ValidationException(f"1 validation error detected: Value null at '{_lower(path, name)}' "
                                          "failed to satisfy constraint: Member must not be null")
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise SerializationException(f"expected a list{_where(path)}")
        _check_size(shape, len(value), path)
        return [_parse(shape.member, item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise SerializationException(f"expected a map{_where(path)}")
        _check_size(shape, len(value), path)
        return {_parse(shape.key, k, path, depth + 1): _parse(shape.value, v, f"{path}.{k}", depth + 1)
                for k, v in value.items()}
    if kind == "string":
        if not isinstance(value, str):
            raise SerializationException(f"expected a string{_where(path)}")
        _check_size(shape, len(value), path)
        if shape.enum and value not in shape.enum:
            raise ValidationException(f"1 validation error detected: Value '{value[:64]}'{_where(path)} failed to "
                                      f"satisfy constraint: Member must satisfy enum value set: "
                                      f"[{', '.join(shape.enum)}]")
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SerializationException(f"expected an integer{_where(path)}")
        metadata = shape.metadata
        if ("min" in metadata and value < metadata["min"]) or ("max" in metadata and value > metadata["max"]):
            raise ValidationException(f"1 validation error detected: Value '{value}'{_where(path)} failed to satisfy "
                                      f"constraint: Member must be between {metadata.get('min')} and "
                                      f"{metadata.get('max')}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise SerializationException(f"expected a boolean{_where(path)}")
        return value
    if kind == "blob":
        if not isinstance(value, str):
            raise SerializationException(f"expected base64 text{_where(path)}")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SerializationException(f"invalid base64{_where(path)}") from None
        _check_size(shape, len(raw), path)
        return raw
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SerializationException(f"expected epoch seconds{_where(path)}")
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise ValidationException(f"timestamp out of range{_where(path)}") from None
    raise SerializationException(f"unsupported member type{_where(path)}")  # no KMS input has another type


def _lower(path: str, name: str) -> str:
    leaf = name[:1].lower() + name[1:]
    return f"{path}.{leaf}" if path else leaf


def _check_size(shape: Any, size: int, path: str) -> None:
    metadata = shape.metadata
    if "min" in metadata and size < metadata["min"]:
        raise ValidationException(f"1 validation error detected: Value{_where(path)} failed to satisfy constraint: "
                                  f"Member must have length greater than or equal to {metadata['min']}")
    if "max" in metadata and size > metadata["max"]:
        raise ValidationException(f"1 validation error detected: Value{_where(path)} failed to satisfy constraint: "
                                  f"Member must have length less than or equal to {metadata['max']}")


def _render(shape: Any, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return {name: _render(member, value[name]) for name, member in shape.members.items()
                if value.get(name) is not None}
    if kind == "list":
        return [_render(shape.member, item) for item in value]
    if kind == "map":
        return {k: _render(shape.value, v) for k, v in value.items()}
    if kind == "blob":
        return base64.b64encode(bytes(value)).decode()
    if kind == "timestamp":
        return epoch(value)
    return value


def epoch(value: datetime | str) -> float:
    """Epoch seconds of a keystore timestamp (ISO 8601 text) or a datetime."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return round(when.timestamp(), 3)
