"""Build script of ``envelope._native``: the one cffi FFI, out-of-line API mode.

Importing this module only defines ``ffibuilder``; setuptools builds it through
``setup.py`` (``cffi_modules``), and ``python csrc/ffi_build.py`` compiles it in
place for development.  The cdef declares only what :mod:`envelope.engines.native`
calls; the constants are written ``...`` so the compiler reads them from
``envelope_engine.h`` instead of this file repeating them.

The extension links the system OpenSSL (libcrypto) and pthreads.  OpenSSL's
headers come from ``libssl-dev`` on Debian and Ubuntu (``openssl-devel`` on
Fedora and RHEL); without them setup.py installs envelope without this
extension and says what to install (``ENVELOPE_REQUIRE_NATIVE=1`` makes that an
error), and a direct compile of chunk.c stops on an ``#error`` that says the same.
"""

from __future__ import annotations

import os

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
# Relative when setuptools runs this from the project root: that keeps the
# object files inside build/ instead of mirroring an absolute path there.
# Absolute otherwise, and when run as a script (FFI.compile changes directory).
_CSRC = "csrc" if __name__ != "__main__" and os.path.abspath(os.getcwd()) == _ROOT else _HERE

CDEF = """
#define ENV_OK ...
#define ENV_ERR_AUTH ...
#define ENV_ERR_ARG ...
#define ENV_ERR_NOMEM ...
#define ENV_ERR_CRYPTO ...
#define ENV_ERR_READ ...
#define ENV_ERR_WRITE ...
#define ENV_ERR_CHANGED ...
#define ENV_ERR_CANCELLED ...
#define ENV_KEY_SIZE ...
#define ENV_TAG_SIZE ...
#define ENV_MAX_CHUNK_SIZE ...
#define ENV_MAX_THREADS ...
#define ENV_MIN_PART_BYTES ...
#define ENV_MAX_IV_SIZE ...
#define ENV_FILE_RUN_BYTES ...
#define ENV_HMAC_SHA256_SIZE ...

struct env_file_state {
    uint64_t done;
    int cancel;
    uint64_t failed_index;
    int sys_errno;
};

int env_seal_batch(const uint8_t *key, uint64_t first_index,
                   const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap,
                   uint32_t chunk_size, int final, int threads, size_t *out_len);
int env_open_batch(const uint8_t *key, uint64_t first_index,
                   const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap,
                   uint32_t chunk_size, int final, int threads,
                   size_t *out_len, uint64_t *failed_index);
int env_gcm_encrypt(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                    uint8_t *out, uint8_t *tag, size_t tag_len);
int env_gcm_decrypt(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                    const uint8_t *tag, size_t tag_len, uint8_t *out);
int env_hkdf_sha512(const uint8_t *key, size_t key_len, const uint8_t *salt, size_t salt_len,
                    const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);
int env_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t data_len,
                    uint8_t *out);
int env_equal(const uint8_t *a, const uint8_t *b, size_t len);
int env_seal_file(const uint8_t *key, int in_fd, uint64_t in_off, uint64_t in_len,
                  int out_fd, uint64_t out_off, uint32_t chunk_size, int threads,
                  struct env_file_state *state);
int env_open_file(const uint8_t *key, int in_fd, uint64_t in_off, uint64_t in_len,
                  int out_fd, uint64_t out_off, uint32_t chunk_size, int threads,
                  struct env_file_state *state);

int env_seal_inplace(const uint8_t *key, uint64_t first_index, uint8_t *buf, size_t buf_cap,
                     size_t plain_len, uint32_t chunk_size, int final, size_t *out_len);
int env_open_inplace(const uint8_t *key, uint64_t first_index, uint8_t *buf, size_t sealed_len,
                     uint32_t chunk_size, int final, size_t *out_len, uint64_t *failed_index);

const char *env_openssl_version(void);
"""

#: The C files, one per concern (csrc/engine_internal.h says which is which).
SOURCES = ("chunk.c", "batch.c", "pool.c", "file_loop.c", "kat.c", "kdf.c")

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "envelope._native",
    '#include "envelope_engine.h"',
    sources=[os.path.join(_CSRC, name) for name in SOURCES],
    include_dirs=[_CSRC],
    libraries=["crypto", "pthread"],
    extra_compile_args=["-std=c99", "-O2", "-Wall", "-Wextra", "-pthread"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    # Development build: compile in build/cffi, then put the extension next to
    # the package, where ``pip install -e .`` would have put it.
    import shutil

    built = ffibuilder.compile(tmpdir=os.path.join(_ROOT, "build", "cffi"), verbose=True)
    shutil.copy(built, os.path.join(_ROOT, "envelope", os.path.basename(built)))
