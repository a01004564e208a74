"""``envelope keys serve`` in a subprocess for tests: a keystore with access keys, the server, clients.

The server is started with ``--port 0`` and its first stdout line read for the
endpoint, exactly as a script would; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REGION = "us-east-1"
OWNER = "local:user/owner"
STARTUP_TIMEOUT = 60


@dataclass
class Served:
    """A running server: its process, endpoint, keystore, and an access key per principal."""

    proc: subprocess.Popen[str]
    url: str
    keystore: Path
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)

    def client(self, principal: str = OWNER, **kwargs: Any) -> Any:
        import boto3
        from botocore.config import Config

        key_id, secret = self.credentials[principal]
        return boto3.client("kms", endpoint_url=self.url, region_name=REGION, aws_access_key_id=key_id,
                            aws_secret_access_key=secret,
                            config=Config(retries={"total_max_attempts": 1}, **kwargs))

    def env(self, principal: str = OWNER) -> dict[str, str]:
        """The environment an AWS tool needs to call this server as *principal* (and nothing else)."""
        key_id, secret = self.credentials[principal]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret, AWS_REGION=REGION,
                   AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull,
                   AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_ENDPOINT_URL_KMS=self.url)
        return env


def make_keystore(path: Path, principals: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """A new keystore in :data:`REGION` owned by :data:`OWNER`, and an access key for each principal."""
    from envelope.kms.operations.credentials import create_credential
    from envelope.kms.store import KeyStore

    credentials = {}
    with KeyStore(path, create=True, region=REGION, principal=OWNER) as store:
        for principal in (OWNER, *principals):
            credential, secret = create_credential(store, principal)
            credentials[principal] = (credential.access_key_id, secret)
    return credentials


def start(keystore: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    """``envelope keys serve --port 0`` on *keystore*: the process and its endpoint URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen([sys.executable, "-m", "envelope", "keys", "serve", "--port", "0", "--keystore",
                             str(keystore), *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith(("http://", "https://")):
        proc.kill()
        _, err = proc.communicate(timeout=STARTUP_TIMEOUT)
        raise AssertionError(f"the server did not start: {line!r} {err!r}")
    return proc, line


def stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM, and the exit status once it has finished what it was doing."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def serve(tmp: Path, principals: tuple[str, ...] = (), *options: str) -> Served:
    keystore = tmp / "keystore.db"
    credentials = make_keystore(keystore, principals)
    proc, url = start(keystore, *options)
    return Served(proc, url, keystore, credentials)


@contextlib.contextmanager
def serving(tmp: Path, principals: tuple[str, ...] = (), *options: str) -> Iterator[Served]:
    """:func:`serve`, stopped (SIGTERM) on the way out."""
    server = serve(tmp, principals, *options)
    try:
        yield server
    finally:
        stop(server.proc)
