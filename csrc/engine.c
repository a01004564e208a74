/*
 * engine.c - envelope's native chunk engine: AES-256-GCM STREAM chunks on
 * OpenSSL EVP, a batch split across a persistent pool of pthreads.
 *
 * No cipher code lives here; OpenSSL does the AES and GHASH (with AES-NI and
 * PCLMULQDQ where present) and compares tags in constant time.  This file
 * owns the framing, the bounds, and the threads.
 */
#define _POSIX_C_SOURCE 200809L /* pthread_sigmask under -std=c99 */

#include "envelope_engine.h"

#if defined(__has_include)
#if !__has_include(<openssl/evp.h>)
#error "openssl/evp.h not found: install the OpenSSL development headers (Debian/Ubuntu: apt-get install libssl-dev; Fedora/RHEL: dnf install openssl-devel)"
#endif
#endif

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* ------------------------------------------------------------------ cipher */

static const EVP_CIPHER *gcm_cipher;
static pthread_once_t cipher_once = PTHREAD_ONCE_INIT;

static void fetch_cipher(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    /* Fetched once: handing EVP_aes_256_gcm() to every new context would
     * repeat the provider lookup, which takes a global lock, per context. */
    gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
#else
    gcm_cipher = EVP_aes_256_gcm();
#endif
}

static const EVP_CIPHER *cipher(void)
{
    pthread_once(&cipher_once, fetch_cipher);
    return gcm_cipher;
}

/* ------------------------------------------------------------------ chunks */

/* One batch: read-only to the threads but for the result fields. */
struct job {
    int encrypt, final;
    const uint8_t *key;
    uint64_t first_index, count;
    const uint8_t *src;
    uint8_t *dst;
    size_t src_len;
    size_t chunk_size;
    /* Guarded by pool.mu. */
    unsigned pending;
    int status;
    uint64_t failed; /* offset in the batch of the first chunk that failed */
};

static void chunk_nonce(uint8_t nonce[ENV_NONCE_SIZE], uint64_t index, int last)
{
    /* The wire carries an 88-bit counter; the top three bytes stay zero
     * because the engine stops at 2^64 - 1 (checked by the callers). */
    memset(nonce, 0, 3);
    for (int b = 0; b < 8; b++)
        nonce[3 + b] = (uint8_t)(index >> (56 - 8 * b));
    nonce[11] = last ? 0x01 : 0x00;
}

static int seal_one(EVP_CIPHER_CTX *ctx, const uint8_t *nonce,
                    const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t scratch[ENV_TAG_SIZE];
    int outl = 0, finl = 0;

    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1)
        return ENV_ERR_CRYPTO;
    /* The empty final chunk of an empty stream skips Update: its sealed
     * form is the tag alone. */
    if (len && (EVP_EncryptUpdate(ctx, out, &outl, in, (int)len) != 1 ||
                (size_t)outl != len))
        return ENV_ERR_CRYPTO;
    /* GCM's Final emits no bytes; scratch keeps a pointer valid for it. */
    if (EVP_EncryptFinal_ex(ctx, scratch, &finl) != 1 || finl != 0)
        return ENV_ERR_CRYPTO;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, ENV_TAG_SIZE, out + len) != 1)
        return ENV_ERR_CRYPTO;
    return ENV_OK;
}

static int open_one(EVP_CIPHER_CTX *ctx, const uint8_t *nonce,
                    const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t tag[ENV_TAG_SIZE], scratch[ENV_TAG_SIZE];
    int outl = 0, finl = 0;

    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1)
        return ENV_ERR_CRYPTO;
    memcpy(tag, in + len, ENV_TAG_SIZE); /* SET_TAG takes a non-const pointer */
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, ENV_TAG_SIZE, tag) != 1)
        return ENV_ERR_CRYPTO;
    if (len && (EVP_DecryptUpdate(ctx, out, &outl, in, (int)len) != 1 ||
                (size_t)outl != len))
        return ENV_ERR_CRYPTO;
    /* The tag is compared here, by OpenSSL, in constant time. */
    if (EVP_DecryptFinal_ex(ctx, scratch, &finl) != 1)
        return ENV_ERR_AUTH;
    return ENV_OK;
}

/* Seal or open chunks [begin, end) of the batch with one context of its own:
 * the key schedule is computed once per part, each chunk only resets the IV.  Stops at the
 * first failure so that *failed is the first failing chunk of the range. */
static int run_part(const struct job *j, uint64_t begin, uint64_t end, uint64_t *failed)
{
    const size_t sealed = j->chunk_size + ENV_TAG_SIZE;
    const size_t in_step = j->encrypt ? j->chunk_size : sealed;
    const size_t out_step = j->encrypt ? sealed : j->chunk_size;
    uint8_t nonce[ENV_NONCE_SIZE];
    int rc = ENV_OK;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    if (!ctx)
        return ENV_ERR_NOMEM;
    if (EVP_CipherInit_ex(ctx, cipher(), NULL, j->key, NULL, j->encrypt) != 1) {
        rc = ENV_ERR_CRYPTO;
        goto done;
    }
    for (uint64_t n = begin; n < end; n++) {
        size_t in_off = (size_t)n * in_step, in_len = j->src_len - in_off;
        if (in_len > in_step)
            in_len = in_step;
        /* For open, in_len >= 16 was established by the shape checks. */
        size_t len = j->encrypt ? in_len : in_len - ENV_TAG_SIZE;
        /* src is NULL only for an empty stream and dst only when the batch
         * opens to nothing; NULL + 0 is still undefined in C. */
        const uint8_t *in = j->src ? j->src + in_off : NULL;
        uint8_t *out = j->dst ? j->dst + (size_t)n * out_step : NULL;

        chunk_nonce(nonce, j->first_index + n, j->final && n == j->count - 1);
        rc = j->encrypt ? seal_one(ctx, nonce, in, len, out)
                        : open_one(ctx, nonce, in, len, out);
        if (rc != ENV_OK) {
            *failed = n;
            break;
        }
    }
done:
    EVP_CIPHER_CTX_free(ctx); /* the provider wipes the key schedule */
    return rc;
}

/* -------------------------------------------------------------------- pool */

struct part {
    struct job *job;
    uint64_t begin, end;
    struct part *next;
};

/* One process-wide pool.  Workers are created on demand, up to the largest
 * thread count any batch asked for, and then live for the process: they
 * sleep on `work` between batches.  Several batches (from several Python
 * threads) may be queued at once; each caller waits on `done` for its own. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    struct part *head, *tail;
    int nworkers;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, NULL, NULL, 0};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Parts queued per thread of a batch; see run_job. */
#define PARTS_PER_THREAD 4
#define MAX_PARTS (ENV_MAX_THREADS * PARTS_PER_THREAD)

/* Fold one part's result into its batch; pool.mu held.  An internal error
 * outranks an authentication failure, and among authentication failures the
 * lowest chunk wins: parts are contiguous ranges and each stops at its own
 * first failure, so the lowest is the batch's first failing chunk. */
static void finish_part(struct job *j, int rc, uint64_t failed)
{
    if (rc == ENV_ERR_AUTH) {
        if (j->status == ENV_OK || (j->status == ENV_ERR_AUTH && failed < j->failed)) {
            j->status = ENV_ERR_AUTH;
            j->failed = failed;
        }
    } else if (rc != ENV_OK) {
        j->status = rc;
    }
    j->pending--;
}

/* Unlink the first queued part, or the first belonging to job j; pool.mu held. */
static struct part *take_part(const struct job *j)
{
    struct part **link = &pool.head, *prev = NULL;

    while (*link && j && (*link)->job != j) {
        prev = *link;
        link = &(*link)->next;
    }
    struct part *p = *link;
    if (p) {
        *link = p->next;
        if (pool.tail == p)
            pool.tail = prev;
    }
    return p;
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        struct part *p;
        while (!(p = take_part(NULL)))
            pthread_cond_wait(&pool.work, &pool.mu);
        pthread_mutex_unlock(&pool.mu);
        uint64_t failed = 0;
        int rc = run_part(p->job, p->begin, p->end, &failed);
        pthread_mutex_lock(&pool.mu);
        finish_part(p->job, rc, failed);
        pthread_cond_broadcast(&pool.done);
    }
    return NULL;
}

/* After fork() only the forking thread exists in the child: the workers are
 * gone and any queued parts belong to callers that do not exist there.  The
 * pool starts over empty and grows again on the next batch. */
static void atfork_prepare(void) { pthread_mutex_lock(&pool.mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&pool.mu); }
static void atfork_child(void)
{
    pool.head = pool.tail = NULL;
    pool.nworkers = 0;
    pthread_cond_init(&pool.work, NULL);
    pthread_cond_init(&pool.done, NULL);
    pthread_mutex_unlock(&pool.mu);
}
static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Grow the pool to `want` workers; pool.mu held.  Failure to create a thread
 * is not an error: the caller runs whatever parts no worker picks up. */
static void ensure_workers(int want)
{
    sigset_t all, old;
    pthread_attr_t attr;

    if (pool.nworkers >= want || pthread_attr_init(&attr) != 0)
        return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Workers block every signal (they inherit the mask at creation), so
     * signals such as SIGINT reach the interpreter's threads, not ours. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (pool.nworkers < want) {
        pthread_t t;
        if (pthread_create(&t, &attr, worker, NULL) != 0)
            break;
        pool.nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

static int run_job(struct job *j, int threads)
{
    struct part parts[MAX_PARTS];
    uint64_t helpers = (uint64_t)threads, n = j->src_len / ENV_MIN_PART_BYTES, failed = 0;

    if (helpers > ENV_MAX_THREADS)
        helpers = ENV_MAX_THREADS;
    /* More parts than threads: whoever is free takes the next one, so a
     * thread that starts late or is preempted (a busy or virtual machine)
     * delays the batch by one part, not by a whole share of it. */
    if (n > helpers * PARTS_PER_THREAD)
        n = helpers * PARTS_PER_THREAD;
    if (n > j->count)
        n = j->count;
    if (helpers > n)
        helpers = n;
    helpers = helpers ? helpers - 1 : 0; /* the caller works too */
    j->status = ENV_OK;
    if (helpers == 0) { /* small batch or one thread: no hand-off at all */
        int rc = run_part(j, 0, j->count, &failed);
        j->failed = failed;
        return rc;
    }

    /* Contiguous, balanced ranges of chunks: the first `rem` get one more. */
    uint64_t base = j->count / n, rem = j->count % n, at = 0;
    for (uint64_t p = 0; p < n; p++) {
        parts[p].job = j;
        parts[p].begin = at;
        at += base + (p < rem);
        parts[p].end = at;
        parts[p].next = p + 1 < n ? &parts[p + 1] : NULL;
    }
    j->pending = (unsigned)n;

    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&pool.mu);
    ensure_workers((int)helpers);
    if (pool.tail)
        pool.tail->next = &parts[0];
    else
        pool.head = &parts[0];
    pool.tail = &parts[n - 1];
    for (uint64_t p = 0; p < helpers; p++)
        pthread_cond_signal(&pool.work);
    /* The caller takes its own parts alongside the workers (all of them if
     * no worker could be created), then waits for the ones in flight.
     * `parts` lives on this stack: nothing returns before pending is 0. */
    while (j->pending) {
        struct part *p = take_part(j);
        if (!p) {
            pthread_cond_wait(&pool.done, &pool.mu);
            continue;
        }
        pthread_mutex_unlock(&pool.mu);
        int rc = run_part(j, p->begin, p->end, &failed);
        pthread_mutex_lock(&pool.mu);
        finish_part(j, rc, failed);
    }
    pthread_mutex_unlock(&pool.mu);
    return j->status;
}

/* --------------------------------------------------------------- batches */

static int overlaps(const void *a, size_t alen, const void *b, size_t blen)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return alen && blen && x < y + blen && y < x + alen;
}

/* The bounds common to both directions once the batch's shape is known
 * (j->count >= 1, out_need), then the run with a private copy of the key. */
static int run_batch(struct job *j, const uint8_t *key, size_t out_need,
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
    int rc = run_job(j, threads);
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
    struct job j = {.encrypt = 1, .final = final != 0, .first_index = first_index,
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
    struct job j = {.encrypt = 0, .final = final != 0, .first_index = first_index,
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

/* ---------------------------------------------------------- raw, for KATs */

static int raw_gcm(int enc, const uint8_t *key, size_t key_len, const uint8_t *iv,
                   size_t iv_len, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                   size_t in_len, uint8_t *out, uint8_t *tag, size_t tag_len)
{
    uint8_t scratch[ENV_TAG_SIZE];
    int outl = 0, rc = ENV_ERR_CRYPTO;

    /* GCM allows any IV from 1 byte up (longer ones are GHASHed), OpenSSL
     * only up to 128, and tags of 4 to 16 bytes; EVP counts in ints. */
    if (!key || key_len != ENV_KEY_SIZE || !iv || iv_len < 1 || iv_len > ENV_MAX_IV_SIZE ||
        (!aad && aad_len) || aad_len > INT_MAX || (!in && in_len) || (!out && in_len) ||
        in_len > INT_MAX || !tag || tag_len < 4 || tag_len > ENV_TAG_SIZE)
        return ENV_ERR_ARG;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return ENV_ERR_NOMEM;
    if (EVP_CipherInit_ex(ctx, cipher(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, (int)iv_len, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, enc) != 1 ||
        (aad_len && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1) ||
        (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)tag_len, tag) != 1) ||
        (in_len && (EVP_CipherUpdate(ctx, out, &outl, in, (int)in_len) != 1 ||
                    (size_t)outl != in_len)))
        goto done;
    if (EVP_CipherFinal_ex(ctx, scratch, &outl) != 1)
        rc = enc ? ENV_ERR_CRYPTO : ENV_ERR_AUTH;
    else if (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, (int)tag_len, tag) == 1)
        rc = ENV_OK;
done:
    EVP_CIPHER_CTX_free(ctx);
    if (rc != ENV_OK && !enc && in_len)
        OPENSSL_cleanse(out, in_len); /* no unauthenticated plaintext */
    return rc;
}

int env_gcm_encrypt(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                    uint8_t *out, uint8_t *tag, size_t tag_len)
{
    return raw_gcm(1, key, key_len, iv, iv_len, aad, aad_len, in, in_len, out, tag, tag_len);
}

int env_gcm_decrypt(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                    const uint8_t *tag, size_t tag_len, uint8_t *out)
{
    uint8_t tag_copy[ENV_TAG_SIZE] = {0}; /* SET_TAG takes a non-const pointer */

    if (tag && tag_len <= ENV_TAG_SIZE)
        memcpy(tag_copy, tag, tag_len);
    return raw_gcm(0, key, key_len, iv, iv_len, aad, aad_len, in, in_len, out,
                   tag ? tag_copy : NULL, tag_len);
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
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return ENV_ERR_NOMEM;
    if (EVP_CipherInit_ex(ctx, cipher(), NULL, key, NULL, encrypt) != 1) {
        rc = ENV_ERR_CRYPTO;
        goto done;
    }
    for (uint64_t n = 0; n < count; n++) {
        size_t len = plain_len - (size_t)n * chunk_size;
        if (len > chunk_size)
            len = chunk_size;
        uint8_t *at = buf ? buf + (size_t)n * sealed : NULL;
        chunk_nonce(nonce, first_index + n, final && n == count - 1);
        /* EVP allows out == in exactly. */
        rc = encrypt ? seal_one(ctx, nonce, at, len, at) : open_one(ctx, nonce, at, len, at);
        if (rc != ENV_OK) {
            *failed = n;
            break;
        }
    }
done:
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
