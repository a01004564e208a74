"""Tink StreamingAead, AES256_GCM_HKDF_1MB, file to file.

    python tink_stream.py genkey KEYSET.json
    python tink_stream.py enc|dec KEYSET.json IN OUT
"""

import sys

import tink
from tink import cleartext_keyset_handle, streaming_aead

ASSOCIATED = b"envelope bench"
READ = 1 << 20


def main() -> None:
    streaming_aead.register()
    if sys.argv[1] == "genkey":
        handle = tink.new_keyset_handle(streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
        with open(sys.argv[2], "w") as fh:
            cleartext_keyset_handle.write(tink.JsonKeysetWriter(fh), handle)
        return
    mode, keyset, src, dst = sys.argv[1:5]
    with open(keyset) as fh:
        handle = cleartext_keyset_handle.read(tink.JsonKeysetReader(fh.read()))
    primitive = handle.primitive(streaming_aead.StreamingAead)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        if mode == "enc":
            with primitive.new_encrypting_stream(fout, ASSOCIATED) as out:
                for block in iter(lambda: fin.read(READ), b""):
                    out.write(block)
        else:
            with primitive.new_decrypting_stream(fin, ASSOCIATED) as inp:
                for block in iter(lambda: inp.read(READ), b""):
                    fout.write(block)


if __name__ == "__main__":
    main()
