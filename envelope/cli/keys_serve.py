"""``envelope keys serve``: the local keystore as a KMS endpoint any AWS SDK can call.

The HTTP server is uvicorn (the ``server`` extra), imported only here: every
other command starts without it.  The first line on stdout is the endpoint
URL, so a script (or a test fixture) that starts the server with ``--port 0``
learns the port it got.  SIGINT and SIGTERM stop it after the requests in
flight are answered.
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import sys
from typing import Any

from ..exceptions import UsageError
from ..optional import require
from .keys_common import add_action, keystore_path

DEFAULT_PORT = 8790
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_SHUTDOWN_GRACE = 10  # seconds to finish requests in flight after SIGTERM


def register(actions: Any) -> None:
    add = functools.partial(add_action, actions)
    add("serve", cmd_serve, "serve the keystore over the AWS KMS protocol (JSON 1.1, signed requests)",
        (["--host"], {"default": "127.0.0.1", "help": "address to listen on (default 127.0.0.1, loopback only)"}),
        (["--port"], {"type": int, "default": DEFAULT_PORT,
                      "help": f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)"}),
        (["--region"], {"help": "the keystore's region, in key ARNs and signatures (default: the keystore's)"}),
        (["--account"], {"help": "12-digit account id in key ARNs (default: derived from the keystore id)"}),
        (["--tls-cert"], {"metavar": "PEM", "help": "serve HTTPS with this certificate chain (PEM)"}),
        (["--tls-key"], {"metavar": "PEM", "help": "the certificate's private key (PEM)"}),
        (["--account-rps"], {"type": float, "metavar": "N",
                             "help": "request-rate quota per account, requests per second (default: off)"}),
        (["--principal-rps"], {"type": float, "metavar": "N",
                               "help": "request-rate quota per principal, requests per second (default: off)"}))


def cmd_serve(args: argparse.Namespace) -> int:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port")
    if args.account is not None and not (len(args.account) == 12 and args.account.isdigit()):
        raise UsageError(f"--account {args.account!r} is not a 12-digit account id")
    uvicorn = require("uvicorn", "server", "envelope keys serve")
    require("botocore", "server", "envelope keys serve")
    from ..kms.storage.protection import PASSPHRASE_ENV
    from ..kms.store import KeyStore
    from ..server.app import KmsApp
    from ..server.quotas import RateLimiter
    from ..server.runner import KeystoreRunner
    from ..server.wire import Wire

    store = KeyStore(keystore_path(args), create=True, region=args.region)
    try:
        if store.protection == "passphrase" and not os.environ.get(PASSPHRASE_ENV):
            # A prompt from the keystore thread in the middle of a request would hang every client.
            raise UsageError(f"a passphrase keystore is served with its passphrase in ${PASSPHRASE_ENV}")
        wire = Wire(store.region, args.account or account_of(store.keystore_id))
        limiter = RateLimiter(args.account_rps, args.principal_rps) \
            if args.account_rps is not None or args.principal_rps is not None else None
        runner = KeystoreRunner(store, wire, limiter)
        sock = _bind(args.host, args.port)
    except BaseException:
        store.close()
        raise
    try:
        host, port = sock.getsockname()[:2]
        scheme = "https" if args.tls_cert else "http"
        shown = f"[{host}]" if ":" in host else host
        print(f"{scheme}://{shown}:{port}", flush=True)
        if args.host not in _LOOPBACK:
            print(f"envelope: warning: listening on {args.host}, not only on loopback: every host that can reach "
                  f"it may try credentials{'' if args.tls_cert else ', and requests travel unencrypted (no --tls-cert)'}",
                  file=sys.stderr, flush=True)
        config = uvicorn.Config(KmsApp(runner.handle), log_config=None, access_log=False, log_level="warning",
                                ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key, lifespan="off",
                                timeout_graceful_shutdown=_SHUTDOWN_GRACE, server_header=False)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises the signal it stopped on, once requests in flight are done
            pass
    finally:
        sock.close()
        runner.close()
    return 0


def account_of(keystore_id: str) -> str:
    """A stable 12-digit account id for a keystore, as ARNs and ``kms:CallerAccount`` need one."""
    return f"{int(keystore_id, 16) % 10**12:012d}"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
