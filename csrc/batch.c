/*
 * batch.c - batches of consecutive chunks in caller-owned memory: the
 * streaming path's calls, split over the pool (env_seal_batch,
 * env_open_batch) or in place on the calling thread (env_seal_inplace,
 * env_open_inplace).
 *
 * This file owns the batches' shapes and bounds; pool.c runs them.
 */
#define _POSIX_C_SOURCE 200809L

#include "engine_internal.h"

#include <string.h>

#include <openssl/crypto.h>

static int overlaps(const void *a, size_t alen, const void *b, size_t blen)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return alen && blen && x < y + blen && y < x + alen;
}

/* The bounds common to both directions once the batch's shape is known
 * (j->count >= 1, out_need), then the run with a private copy of the key. */
static int run_batch(struct env_job *j, const uint8_t *key, size_t out_need,
                     size_t dst_cap, int threads)
{
    uint8_t key_copy[ENV_KEY_SIZE];

    /* first_index + count - 1 must not pass 2^64 - 1. */
    if (j->count - 1 > UINT64_MAX - j->first_index)
        return ENV_ERR_ARG;
    if (dst_cap < out_need || (!j->dst && out_need))
        return ENV_ERR_ARG;
    /* Overlap would let one chunk's output overwrite input not yet read,
     * and with threads the order of reads and writes is not even fixed. */
    if (overlaps(j->src, j->src_len, j->dst, out_need))
        return ENV_ERR_ARG;
    /* Copied: the caller's key buffer may be mutable and shared. */
    memcpy(key_copy, key, ENV_KEY_SIZE);
    j->key = key_copy;
    int rc = env_pool_run(j, threads);
    OPENSSL_cleanse(key_copy, sizeof key_copy);
    return rc;
}

static int bad_args(const uint8_t *key, const uint8_t *src, size_t src_len,
                    uint32_t chunk_size, int threads)
{
    return !key || (!src && src_len) || threads < 1 || chunk_size < 1 ||
           chunk_size > ENV_MAX_CHUNK_SIZE;
}

int env_seal_batch(const uint8_t key[ENV_KEY_SIZE], uint64_t first_index,
                   const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap,
                   uint32_t chunk_size, int final, int threads, size_t *out_len)
{
    struct env_job j = {.encrypt = 1, .final = final != 0, .first_index = first_index,
                    .src = src, .src_len = src_len, .dst = dst, .chunk_size = chunk_size};

    if (!out_len || bad_args(key, src, src_len, chunk_size, threads))
        return ENV_ERR_ARG;
    *out_len = 0;
    /* An empty stream is one empty final chunk, never zero chunks, and only
     * the batch that ends the stream may end in a short chunk. */
    if (src_len == 0 ? !final : !final && src_len % chunk_size)
        return ENV_ERR_ARG;
    j.count = src_len == 0 ? 1 : src_len / chunk_size + (src_len % chunk_size != 0);
    if (j.count > (SIZE_MAX - src_len) / ENV_TAG_SIZE)
        return ENV_ERR_ARG;
    size_t need = src_len + (size_t)j.count * ENV_TAG_SIZE;
    int rc = run_batch(&j, key, need, dst_cap, threads);
    if (rc == ENV_OK)
        *out_len = need;
    return rc;
}

int env_open_batch(const uint8_t key[ENV_KEY_SIZE], uint64_t first_index,
                   const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap,
                   uint32_t chunk_size, int final, int threads,
                   size_t *out_len, uint64_t *failed_index)
{
    struct env_job j = {.encrypt = 0, .final = final != 0, .first_index = first_index,
                    .src = src, .src_len = src_len, .dst = dst, .chunk_size = chunk_size};

    if (!out_len || !failed_index || bad_args(key, src, src_len, chunk_size, threads))
        return ENV_ERR_ARG;
    *out_len = 0;
    *failed_index = 0;
    size_t sealed = (size_t)chunk_size + ENV_TAG_SIZE;
    size_t full = src_len / sealed, rest = src_len % sealed, plain;
    if (rest == 0 && full) {
        j.count = full;
        plain = full * chunk_size;
    } else if (!final || rest < ENV_TAG_SIZE) {
        /* Mid-stream a batch is whole sealed chunks; the batch that ends
         * the stream ends with a chunk that at least holds its tag. */
        return ENV_ERR_ARG;
    } else {
        j.count = (uint64_t)full + 1;
        plain = full * chunk_size + (rest - ENV_TAG_SIZE);
    }
    int rc = run_batch(&j, key, plain, dst_cap, threads);
    if (rc == ENV_OK) {
        *out_len = plain;
    } else if (rc == ENV_ERR_AUTH) {
        *failed_index = first_index + j.failed;
        /* Chunks that did verify are wiped too: a failed batch hands back
         * nothing, even to a caller that forgets to discard it. */
        if (plain)
            OPENSSL_cleanse(dst, plain);
    }
    return rc;
}

/* ------------------------------------------------- in place, for streams */

/* The layout both in-place calls share: chunk k of the batch sits at
 * k * (chunk_size + 16), in its sealed place.  A reader fills each chunk's
 * plaintext there, leaving the tag's 16 bytes free, and the sealed batch is
 * then contiguous, ready to write.  Opened, each chunk's plaintext is left
 * where its ciphertext was, then moved together once every tag verified.
 * One buffer, the size of a cache, serves the read, the cipher and the
 * write, instead of a batch crossing memory between two.  One thread: a
 * stream's batches are small, and a pipe's neighbours keep the other cores
 * busy. */
static int run_inplace(int encrypt, const uint8_t *key, uint64_t first_index, uint8_t *buf,
                       size_t plain_len, uint64_t count, uint32_t chunk_size, int final,
                       uint64_t *failed)
{
    const size_t sealed = (size_t)chunk_size + ENV_TAG_SIZE;
    uint8_t nonce[ENV_NONCE_SIZE];
    int rc = ENV_OK;

    if (count - 1 > UINT64_MAX - first_index)
        return ENV_ERR_ARG;
    EVP_CIPHER_CTX *ctx = env_keyed_ctx(key, encrypt, &rc);
    if (!ctx)
        return rc;
    for (uint64_t n = 0; n < count; n++) {
        size_t len = plain_len - (size_t)n * chunk_size;
        if (len > chunk_size)
            len = chunk_size;
        uint8_t *at = buf ? buf + (size_t)n * sealed : NULL;
        env_chunk_nonce(nonce, first_index + n, final && n == count - 1);
        /* EVP allows out == in exactly. */
        rc = encrypt ? env_seal_one(ctx, nonce, at, len, at) : env_open_one(ctx, nonce, at, len, at);
        if (rc != ENV_OK) {
            *failed = n;
            break;
        }
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int env_seal_inplace(const uint8_t key[ENV_KEY_SIZE], uint64_t first_index,
                     uint8_t *buf, size_t buf_cap, size_t plain_len,
                     uint32_t chunk_size, int final, size_t *out_len)
{
    uint64_t failed = 0;

    if (!out_len || bad_args(key, buf, buf_cap, chunk_size, 1))
        return ENV_ERR_ARG;
    *out_len = 0;
    if (plain_len == 0 ? !final : !final && plain_len % chunk_size)
        return ENV_ERR_ARG;
    uint64_t count = plain_len == 0 ? 1 : plain_len / chunk_size + (plain_len % chunk_size != 0);
    if (count > (SIZE_MAX - plain_len) / ENV_TAG_SIZE)
        return ENV_ERR_ARG;
    size_t need = plain_len + (size_t)count * ENV_TAG_SIZE;
    if (buf_cap < need || !buf)
        return ENV_ERR_ARG;
    int rc = run_inplace(1, key, first_index, buf, plain_len, count, chunk_size, final, &failed);
    if (rc == ENV_OK)
        *out_len = need;
    return rc;
}

int env_open_inplace(const uint8_t key[ENV_KEY_SIZE], uint64_t first_index,
                     uint8_t *buf, size_t sealed_len, uint32_t chunk_size, int final,
                     size_t *out_len, uint64_t *failed_index)
{
    uint64_t failed = 0, count;
    size_t plain;

    if (!out_len || !failed_index || bad_args(key, buf, sealed_len, chunk_size, 1))
        return ENV_ERR_ARG;
    *out_len = 0;
    *failed_index = 0;
    size_t sealed = (size_t)chunk_size + ENV_TAG_SIZE;
    size_t full = sealed_len / sealed, rest = sealed_len % sealed;
    if (rest == 0 && full) {
        count = full;
        plain = full * chunk_size;
    } else if (!final || rest < ENV_TAG_SIZE) {
        return ENV_ERR_ARG;
    } else {
        count = (uint64_t)full + 1;
        plain = full * chunk_size + (rest - ENV_TAG_SIZE);
    }
    int rc = run_inplace(0, key, first_index, buf, plain, count, chunk_size, final, &failed);
    if (rc == ENV_OK) {
        /* Close the tags' gaps, all chunks having verified: one write then takes
         * the batch, however small its chunks (a move within the cache). */
        for (uint64_t n = 1; n < count; n++) {
            size_t len = plain - (size_t)n * chunk_size;
            memmove(buf + (size_t)n * chunk_size, buf + (size_t)n * sealed, len < chunk_size ? len : chunk_size);
        }
        *out_len = plain;
    } else if (rc == ENV_ERR_AUTH) {
        *failed_index = first_index + failed;
        /* Chunks before the failing one opened: a failed batch hands back nothing. */
        OPENSSL_cleanse(buf, sealed_len);
    }
    return rc;
}
