"""A KMS endpoint for tests: moto's server, on 127.0.0.1, behind a thin gate that adds what moto lacks.

moto 5 answers the KMS API over HTTP, but (1) it lets a disabled key or a key
pending deletion encrypt and decrypt, where AWS KMS refuses with
``DisabledException`` / ``KMSInvalidStateException``; and (2) its ciphertext
keeps 36 bytes of key id, which cuts the 40-character ``mrk-…`` ids of
multi-Region keys, so none of them can decrypt.  The gate is an HTTP proxy on
loopback in front of the server: it asks the server for the key's state
(DescribeKey) before each cryptographic call and answers as AWS KMS does, and
it can inject answers (throttling, failures), connections that drop without an
answer (``drop``) or hang first (``hang``: :attr:`Gate.hang` seconds), and observe traffic (operations, regions,
requests in flight).  The multi-Region fix widens moto's key-id field.

Everything listens on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CRYPTO_OPERATIONS = {"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext"}
_REGION_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/kms/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def widen_moto_key_ids() -> None:
    """Let moto's ciphertext carry 40-character multi-Region key ids (padded, then stripped)."""
    from moto.kms import utils

    if getattr(utils, "_envelope_widened", False):
        return
    utils.KEY_ID_LEN = 40
    utils.HEADER_LEN = utils.KEY_ID_LEN + utils.IV_LEN + utils.TAG_LEN
    utils.CIPHERTEXT_HEADER_FORMAT = f">{utils.KEY_ID_LEN}s{utils.IV_LEN}s{utils.TAG_LEN}s"
    original = utils._deserialize_ciphertext_blob

    def deserialize(ciphertext_blob: bytes) -> Any:
        parsed = original(ciphertext_blob)
        return parsed._replace(key_id=parsed.key_id.rstrip("\x00"))

    utils._deserialize_ciphertext_blob = deserialize
    utils._envelope_widened = True


@dataclass
class Request:
    operation: str
    region: str
    key_id: str | None
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Gate:
    """What the gate has seen and what it will say next."""

    upstream: tuple[str, int]
    requests: list[Request] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)  # operation -> error codes to answer, in order
    delay: float = 0.0
    hang: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()
            self.delay = self.hang = 0.0
            self.max_in_flight = 0

    def operations(self, *names: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if not names or r.operation in names]

    def inject(self, operation: str, *codes: str) -> None:
        with self.lock:
            self.faults.setdefault(operation, []).extend(codes)

    def next_fault(self, operation: str) -> str | None:
        with self.lock:
            queue = self.faults.get(operation)
            return queue.pop(0) if queue else None


class _Handler(BaseHTTPRequestHandler):
    server: _GateServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        gate = self.server.gate
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        match = _REGION_RE.search(self.headers.get("Authorization", ""))
        region = match.group(1) if match else ""
        try:
            key_id = json.loads(body or b"{}").get("KeyId")
        except ValueError:
            key_id = None
        with gate.lock:
            gate.requests.append(Request(operation, region, key_id))
            gate.in_flight += 1
            gate.max_in_flight = max(gate.max_in_flight, gate.in_flight)
        try:
            if gate.delay:
                time.sleep(gate.delay)
            fault = gate.next_fault(operation)
            if fault in ("drop", "hang"):
                time.sleep(gate.hang if fault == "hang" else 0)
                return self._drop()
            if fault is not None:
                return self._answer_error(fault, f"injected {fault}")
            if operation in CRYPTO_OPERATIONS and key_id:
                refusal = self._state_refusal(key_id)
                if refusal is not None:
                    return self._answer_error(*refusal)
            status, headers, payload = self._forward("POST", body)
            self._answer(status, headers, payload)
        finally:
            with gate.lock:
                gate.in_flight -= 1

    def _drop(self) -> None:
        """Reset the connection without a word, as a dying load balancer does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _state_refusal(self, key_id: str) -> tuple[str, str] | None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        headers["X-Amz-Target"] = "TrentService.DescribeKey"
        status, _, payload = self._forward("POST", json.dumps({"KeyId": key_id}).encode(), headers)
        if status != 200:
            return None  # let the real call report NotFound and the like
        meta = json.loads(payload)["KeyMetadata"]
        if meta["KeyState"] == "Disabled":
            return "DisabledException", f"{meta['Arn']} is disabled."
        if meta["KeyState"] != "Enabled":
            return "KMSInvalidStateException", f"{meta['Arn']} is {meta['KeyState']}."
        return None

    def _forward(self, method: str, body: bytes,
                 headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
        if headers is None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        conn = http.client.HTTPConnection(*self.server.gate.upstream, timeout=30)
        try:
            conn.request(method, self.path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _answer(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _answer_error(self, code: str, message: str) -> None:
        payload = json.dumps({"__type": code, "message": message}).encode()
        self._answer(400, [("Content-Type", "application/x-amz-json-1.1")], payload)


class _GateServer(ThreadingHTTPServer):
    daemon_threads = True
    gate: Gate


def start_moto() -> tuple[Any, str]:
    """moto's server on a free loopback port: (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    widen_moto_key_ids()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def serve_gate(upstream: str) -> Iterator[tuple[Gate, str]]:
    host, _, port = upstream.removeprefix("http://").partition(":")
    server = _GateServer(("127.0.0.1", 0), _Handler)
    server.gate = Gate((host, int(port)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.gate, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
