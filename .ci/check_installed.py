"""Check an installed binary wheel: the native engine loads, on the libcrypto the wheel carries.

Run it with the interpreter the wheel is installed in, from outside the source
tree (cibuildwheel's test-command does; so does tests/test_install.py).  It
prints what it found as JSON and exits 1 when the engine is not native or no
libcrypto from inside the wheel (auditwheel's ``envelope.libs/``, delocate's
``envelope/.dylibs/``) is loaded.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def loaded_libraries() -> list[str]:
    """Paths of the shared libraries this process has mapped."""
    if sys.platform.startswith("linux"):
        with open("/proc/self/maps") as maps:
            fields = (line.split(None, 5) for line in maps)
            return sorted({f[5].strip() for f in fields if len(f) == 6 and f[5].startswith("/")})
    if sys.platform == "darwin":
        import ctypes

        dyld = ctypes.CDLL(None)
        dyld._dyld_get_image_name.restype = ctypes.c_char_p
        return sorted(dyld._dyld_get_image_name(i).decode() for i in range(dyld._dyld_image_count()))
    return []


def main() -> int:
    import envelope
    from envelope.about import summary
    from envelope.engines import get_engine

    engine = get_engine()
    engine.openssl_version()  # the extension, and so its libcrypto, is loaded now
    package = Path(envelope.__file__).resolve().parent
    vendored_dirs = (package.parent / "envelope.libs", package / ".dylibs")
    libcrypto = [p for p in loaded_libraries() if os.path.basename(p).startswith("libcrypto")]
    vendored = [p for p in libcrypto if any(Path(p).resolve().is_relative_to(d) for d in vendored_dirs)]
    print(json.dumps({"version": summary(), "package": str(package), "engine": engine.name,
                      "openssl": engine.openssl_version(), "libcrypto_loaded": libcrypto,
                      "libcrypto_vendored": vendored}, indent=2))
    return 0 if engine.name == "native" and vendored else 1


if __name__ == "__main__":
    sys.exit(main())
