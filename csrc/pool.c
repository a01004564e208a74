/*
 * pool.c - the persistent thread pool that batches in memory run on.
 *
 * One process-wide pool; a batch is cut into contiguous parts that the
 * workers and the calling thread take from one queue.
 */
#define _POSIX_C_SOURCE 200809L /* pthread_sigmask under -std=c99 */

#include "engine_internal.h"

#include <pthread.h>
#include <signal.h>

/* Seal or open chunks [begin, end) of the batch with one context of its own:
 * the key schedule is computed once per part, each chunk only resets the IV.  Stops at the
 * first failure so that *failed is the first failing chunk of the range. */
static int run_part(const struct env_job *j, uint64_t begin, uint64_t end, uint64_t *failed)
{
    const size_t sealed = j->chunk_size + ENV_TAG_SIZE;
    const size_t in_step = j->encrypt ? j->chunk_size : sealed;
    const size_t out_step = j->encrypt ? sealed : j->chunk_size;
    uint8_t nonce[ENV_NONCE_SIZE];
    int rc;
    EVP_CIPHER_CTX *ctx = env_keyed_ctx(j->key, j->encrypt, &rc);

    if (!ctx)
        return rc;
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

        env_chunk_nonce(nonce, j->first_index + n, j->final && n == j->count - 1);
        rc = j->encrypt ? env_seal_one(ctx, nonce, in, len, out)
                        : env_open_one(ctx, nonce, in, len, out);
        if (rc != ENV_OK) {
            *failed = n;
            break;
        }
    }
    EVP_CIPHER_CTX_free(ctx); /* the provider wipes the key schedule */
    return rc;
}

/* Workers block every signal (they inherit the mask at creation), so signals
 * such as SIGINT reach the interpreter's threads, not ours. */
void env_block_signals(sigset_t *old)
{
    sigset_t all;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, old);
}

void env_restore_signals(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}


struct part {
    struct env_job *job;
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

/* Parts queued per thread of a batch; see env_pool_run. */
#define PARTS_PER_THREAD 4
#define MAX_PARTS (ENV_MAX_THREADS * PARTS_PER_THREAD)

/* Fold one part's result into its batch; pool.mu held.  An internal error
 * outranks an authentication failure, and among authentication failures the
 * lowest chunk wins: parts are contiguous ranges and each stops at its own
 * first failure, so the lowest is the batch's first failing chunk. */
static void finish_part(struct env_job *j, int rc, uint64_t failed)
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
static struct part *take_part(const struct env_job *j)
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
    sigset_t old;
    pthread_attr_t attr;

    if (pool.nworkers >= want || pthread_attr_init(&attr) != 0)
        return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    env_block_signals(&old);
    while (pool.nworkers < want) {
        pthread_t t;
        if (pthread_create(&t, &attr, worker, NULL) != 0)
            break;
        pool.nworkers++;
    }
    env_restore_signals(&old);
    pthread_attr_destroy(&attr);
}

int env_pool_run(struct env_job *j, int threads)
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

