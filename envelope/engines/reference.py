"""The reference engine: one thread, pyca/cryptography's AESGCM.

Deliberately plain: it is the executable definition the native engine is
checked against, and the fallback where the native core is not built.
``encrypt_into``/``decrypt_into`` write straight into the caller's buffer, so
no per-chunk bytes objects are created.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..exceptions import AuthenticationError
from ..format import TAG_SIZE
from .base import Buffer, Engine, chunk_nonce, plan_open, plan_seal


class ReferenceEngine(Engine):
    name = "python"

    def seal(self, key: bytes, first_index: int, src: Buffer, dst: bytearray | memoryview,
             chunk_size: int, final: bool) -> int:
        src_view, dst_view = memoryview(src), memoryview(dst)
        count = plan_seal(first_index, len(src_view), len(dst_view), chunk_size, final)
        aead = AESGCM(key)
        out = 0
        for n in range(count):
            piece = src_view[n * chunk_size : (n + 1) * chunk_size]
            nonce = chunk_nonce(first_index + n, final and n == count - 1)
            end = out + len(piece) + TAG_SIZE
            aead.encrypt_into(nonce, piece, None, dst_view[out:end])
            out = end
        return out

    def open(self, key: bytes, first_index: int, src: Buffer, dst: bytearray | memoryview,
             chunk_size: int, final: bool) -> int:
        src_view, dst_view = memoryview(src), memoryview(dst)
        count, _ = plan_open(first_index, len(src_view), len(dst_view), chunk_size, final)
        aead = AESGCM(key)
        sealed = chunk_size + TAG_SIZE
        out = 0
        for n in range(count):
            piece = src_view[n * sealed : (n + 1) * sealed]
            nonce = chunk_nonce(first_index + n, final and n == count - 1)
            end = out + len(piece) - TAG_SIZE
            try:
                aead.decrypt_into(nonce, piece, None, dst_view[out:end])
            except InvalidTag:
                raise AuthenticationError.for_chunk(first_index + n) from None
            out = end
        return out
