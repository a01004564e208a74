"""The do-it-yourself baseline: a loop over pyca/cryptography's AESGCM, 1 MiB chunks, one thread.

Nonce = chunk counter; the last chunk is marked in the AAD so truncation is
caught.  What a careful user writes in twenty lines, without a header, key
wrapping or random access.

    python aesgcm_loop.py enc|dec KEY_FILE IN OUT
"""

import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK = 1 << 20
TAG = 16


def main() -> None:
    mode, key_file, src, dst = sys.argv[1:5]
    with open(key_file, "rb") as fh:
        aead = AESGCM(fh.read())
    size = CHUNK if mode == "enc" else CHUNK + TAG
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        index, block = 0, fin.read(size)
        while True:
            following = fin.read(size)
            last = not following
            nonce = struct.pack(">4xQ", index)
            aad = b"\x01" if last else b"\x00"
            fout.write(aead.encrypt(nonce, block, aad) if mode == "enc" else aead.decrypt(nonce, block, aad))
            if last:
                return
            index, block = index + 1, following


if __name__ == "__main__":
    main()
