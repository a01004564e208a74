/*
 * envelope_engine.h - everything Python may call in the native chunk engine.
 *
 * The engine seals and opens STREAM chunks with AES-256-GCM through OpenSSL's
 * EVP interface, in two shapes: batches of consecutive chunks in memory, spread
 * over a persistent pool of threads (the streaming path), and the whole body of
 * a file read and written by the engine itself (the file loop).  The framing
 * is envelope's (engines/base.py):
 *
 *   nonce(i)  = 11-byte big-endian i || flag, flag 0x01 only for the chunk
 *               that ends the stream, 0x00 otherwise
 *   AAD       = empty
 *   on disk   = ciphertext(i) || tag(i), 16-byte tag, chunk after chunk
 *
 * Every function returns one of the ENV_* codes below; nothing is reported
 * through errno or OpenSSL's error queue.  ffi_build.py declares exactly
 * this file's contents to cffi.
 */
#ifndef ENVELOPE_ENGINE_H
#define ENVELOPE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/* Return codes. */
#define ENV_OK          0
#define ENV_ERR_AUTH    1 /* a tag did not verify: forged, damaged or wrong key */
#define ENV_ERR_ARG     2 /* a length, shape, index or pointer is invalid */
#define ENV_ERR_NOMEM   3 /* OpenSSL could not allocate a cipher context */
#define ENV_ERR_CRYPTO  4 /* OpenSSL failed where it cannot fail: a bug */
#define ENV_ERR_READ    5 /* reading the input failed: errno in the state */
#define ENV_ERR_WRITE   6 /* writing the output failed: errno in the state */
#define ENV_ERR_CHANGED 7 /* the input's size changed while it was read */
#define ENV_ERR_CANCELLED 8 /* the caller set the state's cancel flag */

#define ENV_KEY_SIZE    32
#define ENV_TAG_SIZE    16
#define ENV_NONCE_SIZE  12

/* EVP takes int lengths, so a sealed chunk must fit in an int with room to
 * spare; the format's own limit (format.MAX_CHUNK_SIZE) is far below this. */
#define ENV_MAX_CHUNK_SIZE (1u << 30)

/* Upper bound on threads per batch (and on the pool's size). */
#define ENV_MAX_THREADS 64

/* A batch is split only into parts of at least this many bytes (~200 us of
 * AES-GCM on one core): waking an idle worker costs tens of microseconds,
 * and several hundred on a virtual machine whose idle vCPU has halted. */
#define ENV_MIN_PART_BYTES (512u * 1024u)

/*
 * Seal src (src_len bytes) as chunks first_index, first_index + 1, ... into
 * dst.  A non-final batch is whole chunks, at least one; a final batch may
 * end with a short chunk, or be a single empty chunk (src_len == 0).  dst
 * must hold src_len + 16 * chunks bytes and must not overlap src.  On
 * ENV_OK *out_len is that size.
 */
int env_seal_batch(const uint8_t key[ENV_KEY_SIZE], uint64_t first_index,
                   const uint8_t *src, size_t src_len,
                   uint8_t *dst, size_t dst_cap,
                   uint32_t chunk_size, int final, int threads,
                   size_t *out_len);

/*
 * Open sealed chunks from src into dst.  A non-final batch is whole sealed
 * chunks (chunk_size + 16 bytes each), at least one; a final batch ends with
 * a sealed chunk of 16 to chunk_size + 16 bytes.  On ENV_OK *out_len is the
 * plaintext length.  On ENV_ERR_AUTH *failed_index is the first chunk whose
 * tag failed, and the plaintext region of dst has been zeroed.
 */
int env_open_batch(const uint8_t key[ENV_KEY_SIZE], uint64_t first_index,
                   const uint8_t *src, size_t src_len,
                   uint8_t *dst, size_t dst_cap,
                   uint32_t chunk_size, int final, int threads,
                   size_t *out_len, uint64_t *failed_index);

/* OpenSSL 3's GCM refuses IVs over 128 bytes (pyca/cryptography allows 8..128). */
#define ENV_MAX_IV_SIZE 128

/*
 * Single-shot AES-256-GCM with any IV length (1..ENV_MAX_IV_SIZE bytes), AAD
 * and tag length (4..16 bytes).  Not used by the chunk loops: the keystore seals
 * its backing keys and data keys with it (envelope.engines.primitives), and
 * known-answer tests (NIST CAVP, Wycheproof) prove with it that this library's
 * OpenSSL path is standard GCM.  out has in_len bytes.
 */
int env_gcm_encrypt(const uint8_t *key, size_t key_len,
                    const uint8_t *iv, size_t iv_len,
                    const uint8_t *aad, size_t aad_len,
                    const uint8_t *in, size_t in_len,
                    uint8_t *out, uint8_t *tag, size_t tag_len);

int env_gcm_decrypt(const uint8_t *key, size_t key_len,
                    const uint8_t *iv, size_t iv_len,
                    const uint8_t *aad, size_t aad_len,
                    const uint8_t *in, size_t in_len,
                    const uint8_t *tag, size_t tag_len, uint8_t *out);

/* -------------------------------------------------------- key schedule */

#define ENV_HMAC_SHA256_SIZE 32

/*
 * HKDF-SHA-512 (RFC 5869, extract then expand) of key with salt and info,
 * out_len bytes (1 to 255 * 64) into out.  On failure out is zeroed.
 */
int env_hkdf_sha512(const uint8_t *key, size_t key_len, const uint8_t *salt, size_t salt_len,
                    const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

/* HMAC-SHA-256 (RFC 2104) of data under key: ENV_HMAC_SHA256_SIZE bytes into out. */
int env_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t data_len,
                    uint8_t out[ENV_HMAC_SHA256_SIZE]);

/* 1 when a and b hold the same len bytes, else 0, in time that depends on len only. */
int env_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* ------------------------------------------------------------- file loop */

/*
 * The file loop claims runs of consecutive chunks of at least this many
 * bytes (one chunk at the default chunk size) from a shared counter: each run
 * is one pread, the cipher in place in a buffer of this size that stays in
 * the core's cache, and one pwrite at the run's own offset.
 */
#define ENV_FILE_RUN_BYTES (256u * 1024u)

/*
 * Shared between a running file loop and the thread that watches it.  The
 * loop adds to `done` the input bytes of every run it has finished (read it
 * for progress); setting `cancel` to 1 stops every worker before its next
 * run.  On return, for a failure, `failed_index` is the lowest chunk that
 * failed (authentication, read, write or a short read), and `sys_errno`
 * the errno of a failed read or write.
 */
struct env_file_state {
    uint64_t done;
    int cancel;
    uint64_t failed_index;
    int sys_errno;
};

/*
 * Seal in_len bytes of in_fd, from in_off, as chunks 0, 1, ... (the last one
 * flagged), written to out_fd from out_off: chunk i lands at
 * out_off + i * (chunk_size + 16).  in_fd must be a regular file and out_fd
 * must accept pwrite; neither's file position is used or moved.  A regular
 * output is first extended to its final size.  threads counts the calling
 * thread, which works too; every thread is joined before the call returns.
 * ENV_ERR_CHANGED: the input ended early, or its size at the end is not
 * in_off + in_len.
 */
int env_seal_file(const uint8_t key[ENV_KEY_SIZE], int in_fd, uint64_t in_off, uint64_t in_len,
                  int out_fd, uint64_t out_off, uint32_t chunk_size, int threads,
                  struct env_file_state *state);

/*
 * Open the in_len sealed bytes of in_fd from in_off (a whole stream body:
 * whole sealed chunks, the last one 16 to chunk_size + 16 bytes, flagged
 * last) to out_fd from out_off: chunk i's plaintext lands at
 * out_off + i * chunk_size.  Chunks that verified may have been written when
 * another failed: the caller discards the output or cuts it at
 * out_off + failed_index * chunk_size.
 */
int env_open_file(const uint8_t key[ENV_KEY_SIZE], int in_fd, uint64_t in_off, uint64_t in_len,
                  int out_fd, uint64_t out_off, uint32_t chunk_size, int threads,
                  struct env_file_state *state);

/*
 * In place, for streams: buf holds the batch in its sealed layout, chunk k
 * at k * (chunk_size + 16).  env_seal_inplace takes plain_len plaintext bytes
 * placed so (each chunk's 16 tag bytes left free; only the last chunk of a
 * final batch may be short) and seals each chunk where it lies, its tag
 * after it: the sealed batch, *out_len bytes, is then contiguous from buf.
 * buf_cap must hold it.  env_open_inplace opens sealed_len contiguous sealed
 * bytes where they lie and, every tag having verified, moves the plaintext
 * together: it is then buf[0, *out_len).  On ENV_ERR_AUTH *failed_index is the
 * first chunk that failed and all sealed_len bytes have been zeroed.  Both
 * run on the calling thread; the batch rules are env_seal_batch's and
 * env_open_batch's.
 */
int env_seal_inplace(const uint8_t key[ENV_KEY_SIZE], uint64_t first_index,
                     uint8_t *buf, size_t buf_cap, size_t plain_len,
                     uint32_t chunk_size, int final, size_t *out_len);

int env_open_inplace(const uint8_t key[ENV_KEY_SIZE], uint64_t first_index,
                     uint8_t *buf, size_t sealed_len, uint32_t chunk_size, int final,
                     size_t *out_len, uint64_t *failed_index);

/*
 * The version text of the libcrypto this library runs on (OpenSSL_version):
 * the one loaded at run time, which in a wheel is the copy the wheel carries.
 */
const char *env_openssl_version(void);

#endif /* ENVELOPE_ENGINE_H */
