"""Without an optional dependency, whatever needs it says in one line which extra to install.

``pip install .`` installs neither boto3 nor matplotlib.  Each entry point that
needs one is run here in a child whose ``sitecustomize`` hides the module (as
``sys.modules[name] = None`` does: the import fails as if it were absent), and
must end with one ``envelope: error:`` line naming ``pip install
'envelope[EXTRA]'``, a non-zero exit and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import envelope
from envelope.context import EncryptionContext
from envelope.format import WrappedKey
from envelope.keyrings.base import MultiKeyring
from envelope.keyrings.raw_aes import RawAesKeyring
from keyfiles import write_key_file

ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BOTO = ("boto3", "botocore")

SHIM = """\
import os
import sys

for _name in os.environ.get("ENVELOPE_TEST_HIDE_MODULES", "").split(","):
    if _name:
        sys.modules[_name] = None  # "import NAME" now fails as if NAME were not installed
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("optional")
    (root / "shim").mkdir()
    (root / "shim" / "sitecustomize.py").write_text(SHIM)
    kek = write_key_file(root / "kek", os.urandom(32))
    (root / "plain").write_bytes(os.urandom(1000))
    subprocess.run([sys.executable, "-m", "envelope", "encrypt-file", str(root / "plain"), "-o",
                    str(root / "sealed.envelope"), "--key", f"raw-aes:{kek}", "-q"], check=True, timeout=120)
    return root


def run_hidden(work: Path, hide: tuple[str, ...], *argv: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=os.pathsep.join([str(work / "shim"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               ENVELOPE_TEST_HIDE_MODULES=",".join(hide), ENVELOPE_KEYSTORE=str(work / "keystore.db"),
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    command = [sys.executable, "-c", code] if code is not None else [sys.executable, "-m", "envelope", *argv]
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=120)


def assert_one_line_naming(done: subprocess.CompletedProcess[str], extra: str) -> None:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("envelope: error: "), done.stderr
    assert f"pip install 'envelope[{extra}]'" in lines[0], lines[0]


# Every command that needs boto3, each way it can come to need it.
BOTO_COMMANDS: dict[str, tuple[str, list[str]]] = {
    "encrypt-file aws-kms ARN": ("aws", ["encrypt-file", "plain", "-o", "o1", "--key", f"aws-kms:{ARN}"]),
    "encrypt-file aws-kms alias": ("aws", ["encrypt-file", "plain", "-o", "o2", "--key", "aws-kms:alias/x"]),
    "encrypt-file aws-kms, with a cache": ("aws", ["encrypt-file", "plain", "-o", "o3", "--key", f"aws-kms:{ARN}",
                                                   "--cache-max-age", "60"]),
    "encrypt-file, a second key aws-kms": ("aws", ["encrypt-file", "plain", "-o", "o4", "--key", "raw-aes:kek",
                                                   "--key", f"aws-kms:{ARN}"]),
    "decrypt-file aws-kms": ("aws", ["decrypt-file", "sealed.envelope", "-o", "o5", "--key", f"aws-kms:{ARN}"]),
    "decrypt-file aws-kms-discovery": ("aws", ["decrypt-file", "sealed.envelope", "-o", "o6", "--key",
                                               "aws-kms-discovery:"]),
    "decrypt-file aws-kms-discovery, filtered": ("aws", ["decrypt-file", "sealed.envelope", "-o", "o7", "--key",
                                                         "aws-kms-discovery:aws:111122223333"]),
    "decrypt-file aws-kms-discovery, with a cache": ("aws", ["decrypt-file", "sealed.envelope", "-o", "o8", "--key",
                                                             "aws-kms-discovery:", "--cache-max-age", "60"]),
    "rewrap to aws-kms": ("aws", ["rewrap", "sealed.envelope", "-o", "o9", "--key", f"aws-kms:{ARN}",
                                  "--unwrap-key", "raw-aes:kek"]),
    "s3 cp up": ("s3", ["s3", "cp", "plain", "s3://bucket/k", "--key", "raw-aes:kek"]),
    "s3 cp down": ("s3", ["s3", "cp", "s3://bucket/k", "o10", "--key", "raw-aes:kek"]),
    "s3 cp across": ("s3", ["s3", "cp", "s3://bucket/k", "s3://bucket/k2", "--key", "raw-aes:kek"]),
    "s3 cp recursive": ("s3", ["s3", "cp", "--recursive", "s3://bucket/p/", "dir", "--key", "raw-aes:kek"]),
    "s3 inspect": ("s3", ["s3", "inspect", "s3://bucket/k"]),
    "s3 rewrap": ("s3", ["s3", "rewrap", "s3://bucket/k", "--key", "raw-aes:kek"]),
}


@pytest.mark.parametrize("name", sorted(BOTO_COMMANDS))
def test_commands_needing_boto3_name_the_extra_when_it_is_missing(work: Path, name: str) -> None:
    extra, argv = BOTO_COMMANDS[name]
    assert_one_line_naming(run_hidden(work, BOTO, *argv), extra)
    assert not any((work / f"o{i}").exists() for i in range(1, 11))


def test_a_decryption_that_never_needs_aws_still_works_without_boto3(work: Path) -> None:
    """A keyring list with an aws-kms key but a raw-aes key that opens the file: boto3 is not needed."""
    done = run_hidden(work, BOTO, "decrypt-file", "sealed.envelope", "-o", "fine", "--key", "raw-aes:kek",
                      "--key", f"aws-kms:{ARN}", "-q")
    assert done.returncode == 0, done.stderr
    assert (work / "fine").read_bytes() == (work / "plain").read_bytes()


def test_a_bulk_job_names_the_bulk_extra_when_dask_is_missing(work: Path) -> None:
    (work / "tree").mkdir(exist_ok=True)
    (work / "tree" / "f").write_bytes(b"x")
    done = run_hidden(work, ("distributed",), "bulk", "encrypt", "tree", "bulk-out", "--key", "raw-aes:kek",
                      "--manifest", "bulk.sqlite", "-q")
    assert_one_line_naming(done, "bulk")
    assert not (work / "bulk-out").exists()


def test_importing_envelope_bulk_does_not_import_dask(work: Path) -> None:
    done = run_hidden(work, (), code="import sys, envelope, envelope.bulk\n"
                                     "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_the_bench_plot_names_the_plot_extra_when_matplotlib_is_missing(work: Path) -> None:
    done = run_hidden(work, ("matplotlib",), "bench", "--quick", "-q", "--threads", "1", "--chunk-sizes", "64K",
                      "--no-files", "--plot", "bench.png")
    assert_one_line_naming(done, "plot")
    assert not (work / "bench.png").exists()


class _WrapsAsKms(RawAesKeyring):
    """Wrapped keys that name an AWS KMS key, so the aws-kms keyrings take them up (no AWS involved)."""

    def wrap_data_key(self, plaintext: bytes | bytearray, context: EncryptionContext) -> WrappedKey:
        return WrappedKey("aws-kms", ARN, super().wrap_data_key(plaintext, context).ciphertext)


def test_the_api_raises_an_envelope_error_naming_the_extra(work: Path) -> None:
    (work / "kms.envelope").write_bytes(envelope.encrypt(b"x", keys=MultiKeyring([_WrapsAsKms(os.urandom(32))])))
    code = ("import envelope\n"
            "from envelope.exceptions import EnvelopeError\n"
            "blob = open('kms.envelope', 'rb').read()\n"
            "calls = [lambda: envelope.encrypt(b'x', keys=[%r]),\n"
            "         lambda: envelope.decrypt(blob, keys=[%r]),\n"
            "         lambda: envelope.decrypt(blob, keys=['aws-kms-discovery:'])]\n"
            "for call in calls:\n"
            "    try:\n"
            "        call()\n"
            "    except EnvelopeError as exc:\n"
            "        print(type(exc).__name__, exc)\n" % (f"aws-kms:{ARN}", f"aws-kms:{ARN}"))
    done = run_hidden(work, BOTO, code=code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all("pip install 'envelope[aws]'" in line for line in lines), done.stdout
    assert lines[0].startswith("MissingDependencyError ")  # decrypting, it is one of the keys' failures


def test_the_filesystem_names_the_fsspec_extra_when_fsspec_is_missing(work: Path) -> None:
    code = ("from envelope.exceptions import EnvelopeError\n"
            "try:\n"
            "    import envelope.filesystem\n"
            "except EnvelopeError as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    done = run_hidden(work, ("fsspec",), code=code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MissingDependencyError ") and "pip install 'envelope[fsspec]'" in done.stdout
