"""Build glue for the native engine; all metadata lives in pyproject.toml.

``cffi_modules`` makes ``pip install .`` compile ``envelope._native`` from
``csrc/``.  Before compiling, build_ext compiles and links a probe against
OpenSSL with the very compiler and flags of the build.  When the probe fails
(no C compiler, no OpenSSL headers or libcrypto to link), the install goes on
without the native core: envelope then runs on its pure-Python reference
engine, and the build prints one warning saying what to install.  A failure
of csrc/ itself, once the probe passed, is a real error and stops the build.
``ENVELOPE_REQUIRE_NATIVE=1`` turns the missing prerequisites back into an
error, for packagers and CI, where a quiet fallback would hide a broken build.

The extension targets Python's limited API (cffi's default), so one wheel,
tagged ``cp310-abi3``, serves every CPython from 3.10 on.
"""

from __future__ import annotations

import os
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError

REQUIRE_NATIVE_ENV = "ENVELOPE_REQUIRE_NATIVE"
#: The oldest CPython of the abi3 wheel: pyproject's requires-python.
LIMITED_API = "cp310"

PREREQUISITES = (
    "a C compiler and OpenSSL's development files (Debian/Ubuntu: apt-get install gcc "
    "libssl-dev; Fedora/RHEL: dnf install gcc openssl-devel; Alpine: apk add gcc musl-dev "
    "openssl-dev; macOS: xcode-select --install and brew install openssl@3, with "
    "CFLAGS=-I$(brew --prefix openssl@3)/include LDFLAGS=-L$(brew --prefix openssl@3)/lib)"
)

OPENSSL_PROBE = """\
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#if OPENSSL_VERSION_NUMBER < 0x10101000L
#error "OpenSSL 1.1.1 or later is needed"
#endif
int main(void) { return EVP_aes_256_gcm() == NULL; }
"""

#: What csrc/ needs, in order: what is missing if the probe fails, its source, the library it links.
CHECKS = (
    ("no working C compiler", "int main(void) { return 0; }\n", None),
    ("no OpenSSL >= 1.1.1 development headers (openssl/evp.h)", OPENSSL_PROBE, None),
    ("libcrypto could not be linked (no OpenSSL development library)", OPENSSL_PROBE, "crypto"),
)


def native_prerequisites_missing(cmd: build_ext) -> str | None:
    """Why the native core cannot be built with *cmd*'s compiler and flags, or None if it can.

    The probes use the very compiler and flags of the build, so that include
    and library paths from CFLAGS, LDFLAGS or CPATH count as they will.
    """
    with tempfile.TemporaryDirectory() as tmp:
        for index, (missing, source, library) in enumerate(CHECKS):
            path = os.path.join(tmp, f"probe{index}.c")
            with open(path, "w") as f:
                f.write(source)
            try:
                objects = cmd.compiler.compile([path], output_dir=tmp, include_dirs=cmd.include_dirs)
                if library:
                    cmd.compiler.link_executable(objects, f"probe{index}", output_dir=tmp,
                                                 libraries=[library], library_dirs=cmd.library_dirs)
            except (CCompilerError, BaseError, OSError):
                return missing
    return None


class BuildExtOrFallBack(build_ext):
    """Build the native core when its prerequisites are there; otherwise warn (or fail) and skip it."""

    def build_extensions(self) -> None:
        missing = native_prerequisites_missing(self)
        if missing is None:
            super().build_extensions()
            return
        if os.environ.get(REQUIRE_NATIVE_ENV, "") not in ("", "0"):
            raise SystemExit(f"error: envelope's native core cannot be built: {missing}. "
                             f"It needs {PREREQUISITES}. ({REQUIRE_NATIVE_ENV} is set, so there is no "
                             "fallback to the pure-Python engine.)")
        print(f"WARNING: envelope's native core was not built: {missing}. envelope is installed "
              f"with its pure-Python reference engine (same format, slower). For the native core, "
              f"install {PREREQUISITES}, then reinstall with pip install --no-cache-dir "
              f"--force-reinstall; or install a binary wheel. {REQUIRE_NATIVE_ENV}=1 makes this an "
              "error.", file=sys.stderr)
        self.extensions = []


setup(
    cffi_modules=["csrc/ffi_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtOrFallBack},
    options={"bdist_wheel": {"py_limited_api": LIMITED_API}},
)
