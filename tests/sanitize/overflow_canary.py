"""Deliberately write one byte past a heap buffer through the C core, to prove the checker is live.

run.sh runs this before the tests and requires it to fail with the checker's
report: a green sanitizer or memcheck run means something only if the same
setup (build flags, preloaded runtime, PYTHONMALLOC=malloc) catches a real
out-of-bounds write.  The lie is told below the Python checks: the C function
is told the destination holds one byte more than it does.
"""

from __future__ import annotations

from envelope._native import ffi, lib

KEY = bytes(32)
PLAIN = bytes(100)
SEALED_SIZE = len(PLAIN) + lib.ENV_TAG_SIZE

dst = ffi.new("uint8_t[]", SEALED_SIZE - 1)  # one byte short of the sealed chunk
out_len = ffi.new("size_t *")
lib.env_seal_batch(ffi.from_buffer(KEY), 0, ffi.from_buffer(PLAIN), len(PLAIN), dst, SEALED_SIZE,
                   1024, 1, 1, out_len)
print("the out-of-bounds write went unnoticed")
