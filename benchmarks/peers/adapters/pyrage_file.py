"""age through pyrage (the rage bindings), one X25519 recipient, file to file.

    python pyrage_file.py enc|dec IDENTITY_FILE IN OUT     (IDENTITY_FILE as age-keygen writes it)
"""

import sys

import pyrage
from pyrage import x25519


def main() -> None:
    mode, identity_file, src, dst = sys.argv[1:5]
    with open(identity_file) as fh:
        secret = next(line for line in fh.read().splitlines() if line.startswith("AGE-SECRET-KEY-"))
    identity = x25519.Identity.from_str(secret)
    if mode == "enc":
        pyrage.encrypt_file(src, dst, [identity.to_public()])
    else:
        pyrage.decrypt_file(src, dst, [identity])


if __name__ == "__main__":
    main()
