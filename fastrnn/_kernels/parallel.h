/* One helper thread for splitting a small-batch step across two cores.
 *
 * Each step of the fused kernel is cut by panels: the caller computes half of them,
 * the helper the other half (and each projects the input for its half of the panels),
 * so that each core streams (and keeps in its own L2) only its half of the weights,
 * step after step. A step is microseconds long, so the two
 * meet at a spin barrier rather than through a pool's queue; between calls the
 * helper spins a little longer, then sleeps on a condition variable.
 *
 * The helper's part of a job is claimed, by the helper or by the caller, whichever
 * comes for it first: a caller done with its own part takes the helper's too when
 * the helper has not started it (asleep, not yet woken, its core taken by another
 * process), rather than wait for it. And a sleeping helper is woken only for work
 * that outlasts its waking (fr_pool_run): a stream stepped every 10 ms (LSTM hidden
 * 128, 2 cores of a KVM guest) had taken 57 us a step on two cores against 6.5 on one,
 * each step waiting for the sleeping helper's core.
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
#include <time.h>

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
    atomic_ulong taken;          /* ... their helper's parts claimed (by either thread) ... */
    atomic_ulong finished;       /* ... and finished */
    atomic_int sleeping;
    atomic_int signalled;        /* a sleeping helper has been woken, not yet up */
    fr_task_fn fn;
    void *arg;
    pthread_t thread;            /* the helper, once alive */
    int seen_cpu;                /* the caller's CPU when its CPUs were last read (-1: */
    long long seen_at;           /* never), when (ns), and the others it may use: */
    int others_known, others_count;
    int pinned_known;            /* the helper's CPUs as last set (others then) */
#if defined(__linux__)
    cpu_set_t others, pinned;
#endif
    atomic_int quota_alone;      /* the process's CPU quota is under 2 CPUs */
    long long alone_since;       /* short jobs the caller ran while the helper slept: */
    long long alone_last;        /* the first one's start and the last one's end (ns) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} fr_pool_t;

static long long fr_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static fr_pool_t fr_pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .seen_cpu = -1,
};

/* How long the helper spins for the next job before it sleeps: far longer than the gap
 * between two steps of one call, or between step calls back to back, far shorter than
 * a served stream's pause between frames. In time rather than a count of pauses, which
 * take 10 to 140 cycles from one core to the next; the clock is read every 256. */
#define FR_SPIN_NS 200000

/* A sleeping helper takes tens of microseconds to wake (50 us and more in a KVM guest,
 * where the wake is an interrupt to another virtual CPU), and the caller pays for the
 * wake-up call itself. So a job of fewer floating-point operations than FR_WAKE_FLOPS
 * (about 10 us of batched products at an AVX-512 core's FMA peak; a batch-1 step of
 * 2 Mflop, an LSTM's hidden 512, streams 4 MB of weights and takes 100-250 us) does
 * not wake it: the caller runs both parts. Only when such short jobs have kept the
 * caller busy for FR_WAKE_AFTER_NS, each posted less than FR_SPIN_NS after the last
 * one's end (the steps of one call, step calls back to back: pauses a woken helper
 * would spin through), is more of them likely to follow, and the helper is woken. */
#define FR_WAKE_FLOPS 2e6
#define FR_WAKE_AFTER_NS 30000
/* the flops of a job that always wakes the helper (a whole call's half) */
#define FR_LONG_JOB 1e300


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
        long long spin_start = fr_now_ns();
        while ((now = atomic_load_explicit(&fr_pool.posted, memory_order_acquire)) == seen) {
            FR_PAUSE();
            if ((++spins & 255) != 0 || fr_now_ns() - spin_start < FR_SPIN_NS)
                continue;
            pthread_mutex_lock(&fr_pool.mu);
            atomic_store_explicit(&fr_pool.signalled, 0, memory_order_relaxed);
            atomic_store_explicit(&fr_pool.sleeping, 1, memory_order_seq_cst);
            while (atomic_load_explicit(&fr_pool.posted, memory_order_seq_cst) == seen)
                pthread_cond_wait(&fr_pool.cv, &fr_pool.mu);
            atomic_store_explicit(&fr_pool.sleeping, 0, memory_order_relaxed);
            pthread_mutex_unlock(&fr_pool.mu);
            spins = 0;
            spin_start = fr_now_ns();
        }
        seen = now;
        /* the part is ours unless the caller took it (then it finishes the job) */
        unsigned long expect = now - 1;
        if (atomic_compare_exchange_strong_explicit(&fr_pool.taken, &expect, now,
                                                    memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            fr_pool.fn(fr_pool.arg, 1);
            atomic_store_explicit(&fr_pool.finished, now, memory_order_release);
        }
    }
    return NULL;
}

static void fr_pool_after_fork(void)
{
    fr_pool.seen_cpu = -1;
    fr_pool.pinned_known = 0;
    atomic_store(&fr_pool.alive, 0);
    atomic_store(&fr_pool.owned, 0);
    atomic_store(&fr_pool.sleeping, 0);
    atomic_store(&fr_pool.signalled, 0);
    pthread_mutex_init(&fr_pool.mu, NULL);
    pthread_cond_init(&fr_pool.cv, NULL);
}

/* How often a caller still on the CPU it was on reads the CPUs it may use again (a
 * cpuset can shrink or grow, a CPU go offline or come back, between calls): a system
 * call in every kernel call would cost a short stream step a tenth of its time. A
 * caller that moves reads them at once. */
#define FR_AFFINITY_RECHECK_NS 100000000LL

/* 0 when the calling thread may run on no CPU but the one it is on (taskset, a cpuset
 * of one CPU): a helper there would only take turns with its caller, and its spinning
 * would take the caller's time (a stream step 1.27x one thread's). Leaves the other
 * CPUs it may use in fr_pool.others for fr_pool_keep_off_caller. */
static int fr_pool_other_cpus(void)
{
#if defined(__linux__)
    const int cpu = sched_getcpu();
    if (cpu < 0)
        return 1;   /* unknown */
    const long long now = fr_now_ns();
    if (cpu == fr_pool.seen_cpu && now - fr_pool.seen_at < FR_AFFINITY_RECHECK_NS)
        return !fr_pool.others_known || fr_pool.others_count > 0;
    fr_pool.seen_cpu = cpu;
    fr_pool.seen_at = now;
    cpu_set_t allowed;
    fr_pool.others_known = sched_getaffinity(0, sizeof allowed, &allowed) == 0
                           && CPU_ISSET(cpu, &allowed);
    if (!fr_pool.others_known)
        return 1;
    CPU_CLR(cpu, &allowed);
    fr_pool.others = allowed;
    fr_pool.others_count = CPU_COUNT(&allowed);
    return fr_pool.others_count > 0;
#else
    return 1;
#endif
}

/* Keep the helper off the CPU the caller runs on. A sleeping helper woken by its
 * caller may be queued on the caller's own core (the scheduler wakes a thread near its
 * waker), where the two then take turns instead of running side by side until the
 * load balancer moves one: after a pause between calls of more than a few ms, split
 * steps ran 2.5-3x slower than steady ones (LSTM H=512, batch 1, 2 cores: 92-124
 * against 36 us/step) and no faster than one core. The helper may run on any other CPU
 * the caller may use (fr_pool_other_cpus read them); re-pinned only when those change
 * (the caller moved, or its CPUs changed), since setting a sleeping helper's CPUs at
 * every call had cost a stream stepped every 10 ms 3 us a step at hidden 128. */
static void fr_pool_keep_off_caller(void)
{
#if defined(__linux__)
    if (!fr_pool.others_known || fr_pool.others_count == 0)
        return;
    if (fr_pool.pinned_known && CPU_EQUAL(&fr_pool.pinned, &fr_pool.others))
        return;
    if (pthread_setaffinity_np(fr_pool.thread, sizeof fr_pool.others, &fr_pool.others) == 0) {
        fr_pool.pinned = fr_pool.others;
        fr_pool.pinned_known = 1;
    }
#endif
}

/* Set from fastrnn._threads.cpu_quota when the threads are set: with a CPU quota (a
 * container's CPU limit: cgroup cpu.max, cpu.cfs_quota_us) of under 2 CPUs, two busy
 * threads use the period's time up early and are throttled for the rest of it, every
 * thread of the process with them (a stall of up to a period, 100 ms by default), and
 * the helper's spin between jobs spends the quota too; the affinity a container gives
 * a process (all of the host's CPUs) does not show it. Split calls then run alone. */
static void fr_pool_set_quota_alone(int alone)
{
    atomic_store_explicit(&fr_pool.quota_alone, alone, memory_order_relaxed);
}

/* 1 if the caller now owns the helper (start it if needed), 0 if it must run alone. */
static int fr_pool_acquire(void)
{
    if (atomic_load_explicit(&fr_pool.quota_alone, memory_order_relaxed))
        return 0;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&fr_pool.owned, &expected, 1))
        return 0;
    if (!fr_pool_other_cpus()) {
        atomic_store(&fr_pool.owned, 0);
        return 0;
    }
    if (!atomic_load(&fr_pool.alive)) {
        static int atfork_done = 0;
        pthread_t t;
        pthread_attr_t attr;
        if (!atfork_done) {
            pthread_atfork(NULL, NULL, fr_pool_after_fork);
            atfork_done = 1;
        }
        unsigned long p = atomic_load(&fr_pool.posted);
        atomic_store(&fr_pool.taken, p);
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
        fr_pool.pinned_known = 0;
        atomic_store(&fr_pool.alive, 1);
    }
    fr_pool_keep_off_caller();
    return 1;
}

static void fr_pool_release(void)
{
    atomic_store_explicit(&fr_pool.owned, 0, memory_order_release);
}

/* fn(arg, 0) here and fn(arg, 1) on the helper, or here too when the helper has not
 * claimed it by the time fn(arg, 0) returns; returns when both are done. flops: the
 * job's size, which decides whether a sleeping helper is woken for it (FR_WAKE_FLOPS;
 * FR_LONG_JOB: always). */
static void fr_pool_run(fr_task_fn fn, void *arg, double flops)
{
    fr_pool.fn = fn;
    fr_pool.arg = arg;
    unsigned long job = atomic_load_explicit(&fr_pool.posted, memory_order_relaxed) + 1;
    atomic_store_explicit(&fr_pool.posted, job, memory_order_seq_cst);
    const int asleep = atomic_load_explicit(&fr_pool.sleeping, memory_order_seq_cst);
    if (asleep) {
        int wake = flops >= FR_WAKE_FLOPS;
        if (!wake) {
            const long long now = fr_now_ns();
            if (now - fr_pool.alone_last >= FR_SPIN_NS)
                fr_pool.alone_since = now;   /* after a pause: a new run of short jobs */
            wake = now - fr_pool.alone_since >= FR_WAKE_AFTER_NS;
        }
        /* once: the jobs posted while a woken helper gets up (tens of us) would each
         * signal it again, a system call apiece */
        if (wake && !atomic_load_explicit(&fr_pool.signalled, memory_order_relaxed)) {
            pthread_mutex_lock(&fr_pool.mu);
            atomic_store_explicit(&fr_pool.signalled, 1, memory_order_relaxed);
            pthread_cond_signal(&fr_pool.cv);
            pthread_mutex_unlock(&fr_pool.mu);
        }
    }
    fn(arg, 0);
    unsigned long expect = job - 1;
    if (atomic_compare_exchange_strong_explicit(&fr_pool.taken, &expect, job,
                                                memory_order_acq_rel, memory_order_relaxed)) {
        fn(arg, 1);
        atomic_store_explicit(&fr_pool.finished, job, memory_order_release);
        if (asleep)
            fr_pool.alone_last = fr_now_ns();
        return;
    }
    while (atomic_load_explicit(&fr_pool.finished, memory_order_acquire) != job)
        FR_PAUSE();
}

#endif
