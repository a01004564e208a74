"""A loopback TCP proxy that resets chosen HTTP requests part-way through their body.

It sits in front of moto's S3 server.  Each request's head is read to decide
whether it is one to cut (by a predicate on the request line, e.g. every
``UploadPart`` after the first, or every ``GET``).  A chosen request with a
body (PUT, POST) is forwarded for *after* bytes; a chosen GET is forwarded
whole and its answer for *after* bytes; then both connections are reset,
which is what a client sees when a connection drops mid-part.  With *end*
``"close"`` a cut answer ends in an orderly close instead (the body simply
stops short of its Content-Length), and with ``"stall"`` the connection stays
open and silent, as a server that hangs mid-body.  Everything else passes
through untouched, its end included: a connection the server closes after its
answer (moto closes every one) is closed in order to the client, not reset,
since a reset can reach the client before it has read the answer, and would
fail a request nobody chose to cut.  Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass
class DropProxy:
    upstream: tuple[str, int]
    cut: Callable[[bytes], bool] = lambda request_line: False
    after: int = 64 << 10
    end: str = "reset"  # how a cut answer ends: "reset", "close" or "stall"
    cuts: int = 0
    lines: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _reset(*socks: socket.socket) -> None:
    """RST, not FIN.  shutdown() first wakes the other pump thread blocked in recv() on the same socket;
    the reset goes out when the last of the two lets go."""
    for sock in socks:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        sock.close()


def _pump_back(proxy: DropProxy, upstream: socket.socket, client: socket.socket, answer: list[int | None],
               client_gone: threading.Event) -> None:
    """Answers back to the client; *answer* [0] is the byte budget of an answer being cut, if any."""
    end = "close"  # the server closed after its answer: so does the proxy, in order
    try:
        while data := upstream.recv(1 << 16):
            budget = answer[0]
            if budget is not None and len(data) >= budget:
                client.sendall(data[:budget])
                with proxy.lock:
                    proxy.cuts += 1
                end = proxy.end
                break
            if budget is not None:
                answer[0] = budget - len(data)
            client.sendall(data)
        if end == "stall":  # the rest of the answer is dropped until the client gives up
            while upstream.recv(1 << 16):
                pass
            client_gone.wait()
    except OSError:
        end = "reset"  # the server reset the connection, or the request pump did: pass it on
    finally:
        if end == "close":  # FIN; the request pump closes both once the client has let go
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_WR)
        else:
            _reset(client, upstream)


def _serve(proxy: DropProxy, client: socket.socket) -> None:
    upstream = socket.create_connection(proxy.upstream)
    answer: list[int | None] = [None]
    client_gone = threading.Event()
    threading.Thread(target=_pump_back, args=(proxy, upstream, client, answer, client_gone), daemon=True).start()
    budget: int | None = None  # bytes still to forward of a request being cut
    try:
        while data := client.recv(1 << 16):
            line = data.split(b"\r\n", 1)[0]
            method = line.split(b" ", 1)[0]
            if budget is None and method in (b"GET", b"PUT", b"POST", b"HEAD", b"DELETE"):
                with proxy.lock:
                    proxy.lines.append(line)
                if proxy.cut(line):
                    if method == b"GET":
                        answer[0] = proxy.after
                    else:
                        budget = proxy.after
            if budget is not None:
                if len(data) >= budget:
                    upstream.sendall(data[:budget])
                    with proxy.lock:
                        proxy.cuts += 1
                    break
                budget -= len(data)
            upstream.sendall(data)
    except OSError:
        pass
    finally:
        client_gone.set()
        _reset(client, upstream)


def serve(upstream_url: str) -> Iterator[tuple[DropProxy, str]]:
    """Run a proxy to *upstream_url* until the generator is closed: (proxy, its endpoint URL)."""
    host, _, port = upstream_url.removeprefix("http://").partition(":")
    proxy = DropProxy((host, int(port)))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=_serve, args=(proxy, client), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield proxy, f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()
