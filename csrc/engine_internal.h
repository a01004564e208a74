/*
 * engine_internal.h - what the C files of the engine share with each other.
 * Python never sees this file; envelope_engine.h is its whole interface.
 *
 *   chunk.c      the chunk cipher: nonces, one chunk sealed or opened on EVP
 *   batch.c      batches of chunks in memory, split over the pool or in place
 *   pool.c       the persistent thread pool the batches run on
 *   file_loop.c  a whole file body: pread, seal or open in place, pwrite
 *   kat.c        single-shot GCM, for the keystore's blobs and the known-answer tests
 *   kdf.c        HKDF-SHA-512 and HMAC-SHA-256 for the key schedule
 */
#ifndef ENVELOPE_ENGINE_INTERNAL_H
#define ENVELOPE_ENGINE_INTERNAL_H

#include "envelope_engine.h"

#include <signal.h>

#include <openssl/evp.h>

/* The AES-256-GCM cipher, fetched once per process. */
const EVP_CIPHER *env_cipher(void);

/* Nonce of chunk `index`: 11-byte big-endian index, then the last-chunk flag. */
void env_chunk_nonce(uint8_t nonce[ENV_NONCE_SIZE], uint64_t index, int last);

/* One chunk on a context already keyed for its direction.  `out` may equal
 * `in` (in place); otherwise they must not overlap.  seal_one writes len
 * bytes of ciphertext then the tag; open_one reads the tag at in + len. */
int env_seal_one(EVP_CIPHER_CTX *ctx, const uint8_t *nonce, const uint8_t *in, size_t len, uint8_t *out);
int env_open_one(EVP_CIPHER_CTX *ctx, const uint8_t *nonce, const uint8_t *in, size_t len, uint8_t *out);

/* A new context keyed for sealing (encrypt != 0) or opening; NULL with *rc set on failure. */
EVP_CIPHER_CTX *env_keyed_ctx(const uint8_t *key, int encrypt, int *rc);

/* One batch in memory: read-only to the threads but for the result fields. */
struct env_job {
    int encrypt, final;
    const uint8_t *key;
    uint64_t first_index, count;
    const uint8_t *src;
    uint8_t *dst;
    size_t src_len;
    size_t chunk_size;
    /* Guarded by the pool's lock. */
    unsigned pending;
    int status;
    uint64_t failed; /* offset in the batch of the first chunk that failed */
};

/* Run a batch on up to `threads` threads, the caller's included (pool.c). */
int env_pool_run(struct env_job *j, int threads);

/* Block every signal in threads created while it is in force, so that
 * signals such as SIGINT reach the interpreter's threads, not ours. */
void env_block_signals(sigset_t *old);
void env_restore_signals(const sigset_t *old);

#endif /* ENVELOPE_ENGINE_INTERNAL_H */
