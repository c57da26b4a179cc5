/* One helper thread for splitting a small-batch step across two cores.
 *
 * Each step of the fused kernel is cut by panels: the caller computes half of them,
 * the helper the other half (and each projects the input for its half of the panels),
 * so that each core streams (and keeps in its own L2) only its half of the weights,
 * step after step. A step is microseconds long, so the two
 * meet at a spin barrier rather than through a pool's queue; between calls the
 * helper spins a little longer, then sleeps on a condition variable.
 *
 * One caller at a time owns the helper (fr_pool_acquire); a concurrent caller finds
 * it taken and runs single-threaded. After fork() the child starts without the
 * helper and creates its own when first needed.
 */
#ifndef FASTRNN_PARALLEL_H
#define FASTRNN_PARALLEL_H

#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE   /* sched_getcpu, pthread_setaffinity_np */
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FR_PAUSE() _mm_pause()
#else
#define FR_PAUSE() ((void)0)
#endif

typedef void (*fr_task_fn)(void *arg, int part);

typedef struct {
    atomic_int owned;            /* a caller holds the helper */
    atomic_int alive;            /* the helper thread exists (in this process) */
    atomic_ulong posted;         /* jobs posted ... */
    atomic_ulong finished;       /* ... and finished by the helper */
    atomic_int sleeping;
    fr_task_fn fn;
    void *arg;
    pthread_t thread;            /* the helper, once alive */
    int caller_cpu;              /* the CPU the helper was last kept off (-1: none) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} fr_pool_t;

static fr_pool_t fr_pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .caller_cpu = -1,
};

/* Spins before the helper sleeps: ~50 us, longer than the gap between two steps of
 * one call, far shorter than a caller's pause between calls. */
#define FR_SPINS 20000

static void *fr_helper_main(void *unused)
{
    (void)unused;
#if defined(__x86_64__) || defined(__i386__)
    /* this thread only ever runs kernel halves: flush-to-zero and denormals-are-zero
     * for its whole life, as the caller sets them for the length of a kernel call */
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
    /* jobs before this thread existed count as finished (fr_pool_acquire sets it) */
    unsigned long seen = atomic_load_explicit(&fr_pool.finished, memory_order_acquire);
    for (;;) {
        unsigned long now;
        int spins = 0;
        while ((now = atomic_load_explicit(&fr_pool.posted, memory_order_acquire)) == seen) {
            if (++spins < FR_SPINS) { FR_PAUSE(); continue; }
            pthread_mutex_lock(&fr_pool.mu);
            atomic_store_explicit(&fr_pool.sleeping, 1, memory_order_seq_cst);
            while (atomic_load_explicit(&fr_pool.posted, memory_order_seq_cst) == seen)
                pthread_cond_wait(&fr_pool.cv, &fr_pool.mu);
            atomic_store_explicit(&fr_pool.sleeping, 0, memory_order_relaxed);
            pthread_mutex_unlock(&fr_pool.mu);
            spins = 0;
        }
        seen = now;
        fr_pool.fn(fr_pool.arg, 1);
        atomic_store_explicit(&fr_pool.finished, now, memory_order_release);
    }
    return NULL;
}

static void fr_pool_after_fork(void)
{
    fr_pool.caller_cpu = -1;
    atomic_store(&fr_pool.alive, 0);
    atomic_store(&fr_pool.owned, 0);
    atomic_store(&fr_pool.sleeping, 0);
    pthread_mutex_init(&fr_pool.mu, NULL);
    pthread_cond_init(&fr_pool.cv, NULL);
}

/* Keep the helper off the CPU the caller runs on. A sleeping helper woken by its
 * caller may be queued on the caller's own core (the scheduler wakes a thread near its
 * waker), where the two then take turns instead of running side by side until the
 * load balancer moves one: after a pause between calls of more than a few ms, split
 * steps ran 2.5-3x slower than steady ones (LSTM H=512, batch 1, 2 cores: 92-124
 * against 36 us/step) and no faster than one core. The helper may run on any other CPU
 * the process may use; re-pinned only when the caller's CPU changed. */
static void fr_pool_keep_off_caller(void)
{
#if defined(__linux__)
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu == fr_pool.caller_cpu)
        return;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || !CPU_ISSET(cpu, &allowed))
        return;
    CPU_CLR(cpu, &allowed);
    if (CPU_COUNT(&allowed) == 0)
        return;   /* one CPU for the process: nothing to keep apart */
    if (pthread_setaffinity_np(fr_pool.thread, sizeof allowed, &allowed) == 0)
        fr_pool.caller_cpu = cpu;
#endif
}

/* 1 if the caller now owns the helper (start it if needed), 0 if it must run alone. */
static int fr_pool_acquire(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&fr_pool.owned, &expected, 1))
        return 0;
    if (!atomic_load(&fr_pool.alive)) {
        static int atfork_done = 0;
        pthread_t t;
        pthread_attr_t attr;
        if (!atfork_done) {
            pthread_atfork(NULL, NULL, fr_pool_after_fork);
            atfork_done = 1;
        }
        unsigned long p = atomic_load(&fr_pool.posted);
        atomic_store(&fr_pool.finished, p);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, fr_helper_main, NULL);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            atomic_store(&fr_pool.owned, 0);
            return 0;
        }
        fr_pool.thread = t;
        fr_pool.caller_cpu = -1;
        atomic_store(&fr_pool.alive, 1);
    }
    fr_pool_keep_off_caller();
    return 1;
}

static void fr_pool_release(void)
{
    atomic_store_explicit(&fr_pool.owned, 0, memory_order_release);
}

/* fn(arg, 0) here and fn(arg, 1) on the helper; returns when both are done. */
static void fr_pool_run(fr_task_fn fn, void *arg)
{
    fr_pool.fn = fn;
    fr_pool.arg = arg;
    unsigned long job = atomic_load_explicit(&fr_pool.posted, memory_order_relaxed) + 1;
    atomic_store_explicit(&fr_pool.posted, job, memory_order_seq_cst);
    if (atomic_load_explicit(&fr_pool.sleeping, memory_order_seq_cst)) {
        pthread_mutex_lock(&fr_pool.mu);
        pthread_cond_signal(&fr_pool.cv);
        pthread_mutex_unlock(&fr_pool.mu);
    }
    fn(arg, 0);
    while (atomic_load_explicit(&fr_pool.finished, memory_order_acquire) != job)
        FR_PAUSE();
}

#endif
