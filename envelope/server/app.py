"""The HTTP side of the server: a small ASGI application speaking AWS KMS's JSON 1.1 protocol.

One request is ``POST /`` with ``X-Amz-Target: TrentService.<Operation>``,
``Content-Type: application/x-amz-json-1.1`` and a JSON body of at most
:data:`MAX_BODY` bytes.  Anything else is refused with the AWS error an SDK
expects, before the keystore is involved.  The rest happens in the keystore
thread (:class:`~.runner.KeystoreRunner`), in this order: the signature is
verified (an unsigned or badly signed request never reaches a key), the
request is checked against AWS's shape, the rate quota is taken, and the
operation runs as the authenticated principal.  Whatever escapes becomes
``KMSInternalException`` with a message that names no internals: a client
never sees a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from . import errors
from .protocol import CONTENT_TYPE

#: Largest request body.  KMS's largest input (a 32 KiB key policy, JSON-escaped) fits with room to spare.
MAX_BODY = 128 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_log = logging.getLogger("envelope.server")


@dataclass(frozen=True)
class Request:
    """One HTTP request as the signature check and the operation see it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    source: str | None


class KmsApp:
    """The ASGI application; *handle* runs one request in the keystore thread and returns the response body."""

    def __init__(self, handle: Callable[[Request], Awaitable[bytes]]) -> None:
        self._handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            request = await _read(scope, receive)
            _check_http(request)
            body = await self._handle(request)
            await _respond(send, 200, body)
        except errors.AwsError as exc:
            await _respond(send, exc.status, exc.body())
        except Exception:  # noqa: BLE001 - the client gets KMS's internal error, the log the cause
            _log.exception("request failed")
            failure = errors.KMSInternalException("the server could not complete the request")
            await _respond(send, failure.status, failure.body())


def _check_http(request: Request) -> None:
    if request.method != "POST" or request.path != "/":
        raise errors.UnknownOperationException("")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != CONTENT_TYPE:
        raise errors.ValidationException(f"Content-Type must be {CONTENT_TYPE}")


async def _read(scope: Scope, receive: Receive) -> Request:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    declared = headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise errors.ValidationException(f"the request body is larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.ValidationException("the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.ValidationException(f"the request body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    client = scope.get("client")
    return Request(scope["method"], scope.get("path", ""), scope.get("query_string", b"").decode("latin-1"),
                   headers, b"".join(chunks), client[0] if client else None)


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode()),
                            (b"x-amzn-requestid", _request_id())]})
    await send({"type": "http.response.body", "body": body})


def _request_id() -> bytes:
    import uuid

    return str(uuid.uuid4()).encode()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
