"""Build glue for the native engine; all metadata lives in pyproject.toml.

``cffi_modules`` makes ``pip install .`` compile ``envelope._native`` from
``csrc/``.  Before compiling, build_ext checks that OpenSSL's headers are there,
so a missing ``libssl-dev`` is one clear sentence, not a compiler error.
"""

from __future__ import annotations

import os
import tempfile

from setuptools import setup
from setuptools.command.build_ext import build_ext

OPENSSL_MISSING = (
    "envelope's native engine needs the OpenSSL development headers "
    "(openssl/evp.h was not found). Install libssl-dev (Debian/Ubuntu: "
    "apt-get install libssl-dev) or openssl-devel (Fedora/RHEL), then build again."
)


class BuildExtCheckingOpenSSL(build_ext):
    def build_extensions(self) -> None:
        # Compile a one-line probe with the very compiler and flags of the
        # build, so that include paths from CFLAGS/CPATH count as they will.
        with tempfile.TemporaryDirectory() as tmp:
            probe = os.path.join(tmp, "probe.c")
            with open(probe, "w") as f:
                f.write("#include <openssl/evp.h>\nint main(void) { return 0; }\n")
            try:
                self.compiler.compile([probe], output_dir=tmp, include_dirs=self.include_dirs)
            except Exception:
                raise SystemExit(f"error: {OPENSSL_MISSING}") from None
        super().build_extensions()


setup(
    cffi_modules=["csrc/ffi_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtCheckingOpenSSL},
)
