/*
 * file_loop.c - the whole body of a file, read, sealed or opened, and written
 * by the engine itself.
 *
 * Threads claim runs of consecutive chunks from one shared counter.  A run is
 * one pread into the thread's own buffer, the cipher in place (the data never
 * leaves the core's cache), and one pwrite at the run's own offset, which the
 * header length and the chunk size fix.  Nothing is queued between threads,
 * so there is no order to keep and no buffer to hand over.
 *
 * Where in its buffer a run goes matters on some CPUs: the kernel copies file
 * pages with `rep movsb`, which on the AMD EPYC this was measured on runs 3 to
 * 4 times slower (2.4 against 8.7 GB/s) when (destination - source) mod 64 is
 * 1 to 31.  pick_lead shifts each run in its buffer so that both copies avoid
 * that, where the two file offsets allow it.
 */
#define _POSIX_C_SOURCE 200809L

#include "engine_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define LEAD_MAX 64 /* a run starts this many bytes, at most, into its buffer */

struct loop {
    int encrypt;
    const uint8_t *key;
    int in_fd, out_fd;
    uint64_t in_off, in_len, out_off;
    size_t chunk_size, in_step, out_step;
    uint64_t count, run, runs; /* chunks; chunks per run; runs */
    size_t buf_size;
    uint64_t next; /* the next run to claim (atomic) */
    int stop;      /* set on the first failure (atomic) */
    struct env_file_state *state;
    pthread_mutex_t mu; /* guards the three below */
    int status;
    uint64_t failed;
    int err;
};

/* 0 when the kernel's copy from src to dst is aligned, 1 when it is not but
 * fast, 2 when it hits the slow case described at the top. */
static unsigned copy_cost(uint64_t dst, uint64_t src)
{
    unsigned d = (unsigned)((dst - src) & 63);
    return d == 0 ? 0 : d >= 32 ? 1 : 2;
}

/* Where in the buffer a run read from file offset read_off and written to
 * write_off starts: the lead whose two copies cost least. */
static size_t pick_lead(uint64_t read_off, uint64_t write_off)
{
    size_t best = 0;
    unsigned best_cost = 5;

    for (size_t lead = 0; lead < LEAD_MAX; lead++) {
        unsigned cost = copy_cost(lead, read_off) + copy_cost(write_off, lead);
        if (cost < best_cost) {
            best = lead;
            best_cost = cost;
        }
    }
    return best;
}

static void fail(struct loop *L, int rc, uint64_t index, int err)
{
    pthread_mutex_lock(&L->mu);
    if (L->status == ENV_OK || index < L->failed) {
        L->status = rc;
        L->failed = index;
        L->err = err;
    }
    pthread_mutex_unlock(&L->mu);
    __atomic_store_n(&L->stop, 1, __ATOMIC_RELAXED);
}

static int stopped(const struct loop *L)
{
    return __atomic_load_n(&L->stop, __ATOMIC_RELAXED) ||
           __atomic_load_n(&L->state->cancel, __ATOMIC_RELAXED);
}

/* Read exactly n bytes at off; *got says how many came before a failure. */
static int read_all(int fd, uint8_t *p, size_t n, uint64_t off, size_t *got, int *err)
{
    for (*got = 0; *got < n;) {
        ssize_t r = pread(fd, p + *got, n - *got, (off_t)(off + *got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *err = errno;
            return ENV_ERR_READ;
        }
        if (r == 0) /* the input ended early: it shrank under us */
            return ENV_ERR_CHANGED;
        *got += (size_t)r;
    }
    return ENV_OK;
}

static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off, int *err)
{
    for (size_t put = 0; put < n;) {
        ssize_t r = pwrite(fd, p + put, n - put, (off_t)(off + put));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *err = r < 0 ? errno : ENOSPC;
            return ENV_ERR_WRITE;
        }
        put += (size_t)r;
    }
    return ENV_OK;
}

/* Chunks [a, b): read, seal or open in place, write.  On failure *failed is
 * the chunk it concerns. */
static int do_run(struct loop *L, EVP_CIPHER_CTX *ctx, uint8_t *buf, uint64_t a, uint64_t b,
                  uint64_t *failed, int *err)
{
    const size_t cs = L->chunk_size, sealed = cs + ENV_TAG_SIZE;
    uint64_t in_start = a * L->in_step, in_end = b * L->in_step;
    if (in_end > L->in_len)
        in_end = L->in_len;
    const size_t n_in = (size_t)(in_end - in_start), k = (size_t)(b - a);
    const size_t n_out = L->encrypt ? n_in + k * ENV_TAG_SIZE : n_in - k * ENV_TAG_SIZE;
    const uint64_t out_pos = L->out_off + a * L->out_step;
    uint8_t *base = buf + pick_lead(L->in_off + in_start, out_pos);
    uint8_t nonce[ENV_NONCE_SIZE];
    size_t got;
    int rc;

    *failed = a;
    rc = read_all(L->in_fd, base, n_in, L->in_off + in_start, &got, err);
    if (rc != ENV_OK) {
        *failed = a + got / L->in_step;
        return rc;
    }
    if (L->encrypt) /* each chunk to its sealed place, back to front, room for the tags */
        for (size_t j = k; j-- > 1;)
            memmove(base + j * sealed, base + j * cs, n_in - j * cs < cs ? n_in - j * cs : cs);
    for (size_t j = 0; j < k; j++) {
        size_t at = j * sealed, len;
        if (L->encrypt)
            len = n_in - j * cs < cs ? n_in - j * cs : cs;
        else
            len = (n_in - at < sealed ? n_in - at : sealed) - ENV_TAG_SIZE;
        env_chunk_nonce(nonce, a + j, a + j == L->count - 1);
        rc = L->encrypt ? env_seal_one(ctx, nonce, base + at, len, base + at)
                        : env_open_one(ctx, nonce, base + at, len, base + at);
        if (rc != ENV_OK) {
            *failed = a + j;
            return rc;
        }
        if (!L->encrypt && j) /* the plaintext closes up over the tags */
            memmove(base + j * cs, base + at, len);
    }
    return n_out ? write_all(L->out_fd, base, n_out, out_pos, err) : ENV_OK;
}

static void *worker(void *arg)
{
    struct loop *L = arg;
    uint8_t *buf = NULL;
    uint64_t failed = 0;
    int err = 0, rc;
    EVP_CIPHER_CTX *ctx = env_keyed_ctx(L->key, L->encrypt, &rc);

    if (ctx && posix_memalign((void **)&buf, 4096, L->buf_size + LEAD_MAX) != 0) {
        buf = NULL;
        rc = ENV_ERR_NOMEM;
    }
    if (rc != ENV_OK)
        fail(L, rc, __atomic_load_n(&L->next, __ATOMIC_RELAXED) * L->run, 0);
    while (rc == ENV_OK && !stopped(L)) {
        uint64_t r = __atomic_fetch_add(&L->next, 1, __ATOMIC_RELAXED);
        if (r >= L->runs)
            break;
        uint64_t a = r * L->run, b = a + L->run < L->count ? a + L->run : L->count;
        rc = do_run(L, ctx, buf, a, b, &failed, &err);
        if (rc != ENV_OK) {
            fail(L, rc, failed, err);
            break;
        }
        uint64_t in_end = b * L->in_step < L->in_len ? b * L->in_step : L->in_len;
        __atomic_fetch_add(&L->state->done, in_end - a * L->in_step, __ATOMIC_RELAXED);
    }
    if (buf) { /* it held plaintext */
        OPENSSL_cleanse(buf, L->buf_size + LEAD_MAX);
        free(buf);
    }
    EVP_CIPHER_CTX_free(ctx); /* the provider wipes the key schedule */
    return NULL;
}

static int run_loop(struct loop *L, int threads, uint64_t out_len)
{
    pthread_t tids[ENV_MAX_THREADS];
    int started = 0;
    struct stat st;
    sigset_t old;

    /* A regular output grows once, to its final size, rather than with
     * every write, and writes past its end never leave a gap. */
    if (fstat(L->out_fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size < L->out_off + out_len &&
        ftruncate(L->out_fd, (off_t)(L->out_off + out_len)) != 0) {
        /* Not an error here: the writes report what is wrong (ENOSPC, EFBIG). */
    }
    if ((uint64_t)threads > L->runs)
        threads = (int)L->runs;
    env_block_signals(&old);
    while (started < threads - 1 && pthread_create(&tids[started], NULL, worker, L) == 0)
        started++;
    env_restore_signals(&old);
    worker(L); /* the caller works too, and alone if no thread could start */
    for (int t = 0; t < started; t++)
        pthread_join(tids[t], NULL);

    if (L->status == ENV_OK && L->next < L->runs)
        return ENV_ERR_CANCELLED;
    if (L->status == ENV_OK && (fstat(L->in_fd, &st) != 0 ||
                                (uint64_t)st.st_size != L->in_off + L->in_len)) {
        L->status = ENV_ERR_CHANGED; /* it grew, or shrank after its last chunk was read */
        L->failed = L->count;
    }
    return L->status;
}

static int file_loop(int encrypt, const uint8_t *key, int in_fd, uint64_t in_off, uint64_t in_len,
                     int out_fd, uint64_t out_off, uint32_t chunk_size, int threads,
                     struct env_file_state *state)
{
    const size_t sealed = (size_t)chunk_size + ENV_TAG_SIZE;
    struct loop L = {.encrypt = encrypt, .in_fd = in_fd, .out_fd = out_fd, .in_off = in_off,
                     .in_len = in_len, .out_off = out_off, .chunk_size = chunk_size,
                     .in_step = encrypt ? chunk_size : sealed,
                     .out_step = encrypt ? sealed : chunk_size, .state = state};
    uint8_t key_copy[ENV_KEY_SIZE];
    uint64_t out_len, buf_need;

    if (!key || !state || in_fd < 0 || out_fd < 0 || chunk_size < 1 ||
        chunk_size > ENV_MAX_CHUNK_SIZE || threads < 1 || in_len > INT64_MAX ||
        in_off > INT64_MAX - in_len)
        return ENV_ERR_ARG;
    state->failed_index = 0;
    state->sys_errno = 0;
    if (encrypt) {
        /* The empty stream is one empty final chunk, never zero chunks. */
        L.count = in_len == 0 ? 1 : in_len / chunk_size + (in_len % chunk_size != 0);
        out_len = in_len + L.count * ENV_TAG_SIZE;
        buf_need = out_len;
    } else {
        /* Whole sealed chunks, the last one at least its tag. */
        uint64_t rest = in_len % sealed;
        if (in_len == 0 || (rest && rest < ENV_TAG_SIZE))
            return ENV_ERR_ARG;
        L.count = in_len / sealed + (rest != 0);
        out_len = in_len - L.count * ENV_TAG_SIZE;
        buf_need = in_len;
    }
    if (out_len > INT64_MAX || out_off > INT64_MAX - out_len)
        return ENV_ERR_ARG;
    L.run = ENV_FILE_RUN_BYTES / chunk_size ? ENV_FILE_RUN_BYTES / chunk_size : 1;
    L.runs = L.count / L.run + (L.count % L.run != 0);
    L.buf_size = (size_t)(buf_need < L.run * sealed ? buf_need : L.run * sealed);
    if (threads > ENV_MAX_THREADS)
        threads = ENV_MAX_THREADS;
    if (pthread_mutex_init(&L.mu, NULL) != 0)
        return ENV_ERR_NOMEM;
    /* Copied: the caller's key buffer may be mutable and shared. */
    memcpy(key_copy, key, ENV_KEY_SIZE);
    L.key = key_copy;
    int rc = run_loop(&L, threads, out_len);
    OPENSSL_cleanse(key_copy, sizeof key_copy);
    pthread_mutex_destroy(&L.mu);
    if (rc != ENV_OK) {
        state->failed_index = L.failed;
        state->sys_errno = L.err;
    }
    return rc;
}

int env_seal_file(const uint8_t key[ENV_KEY_SIZE], int in_fd, uint64_t in_off, uint64_t in_len,
                  int out_fd, uint64_t out_off, uint32_t chunk_size, int threads,
                  struct env_file_state *state)
{
    return file_loop(1, key, in_fd, in_off, in_len, out_fd, out_off, chunk_size, threads, state);
}

int env_open_file(const uint8_t key[ENV_KEY_SIZE], int in_fd, uint64_t in_off, uint64_t in_len,
                  int out_fd, uint64_t out_off, uint32_t chunk_size, int threads,
                  struct env_file_state *state)
{
    return file_loop(0, key, in_fd, in_off, in_len, out_fd, out_off, chunk_size, threads, state);
}
