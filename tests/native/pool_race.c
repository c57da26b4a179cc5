/* The two-core pool (fastrnn/_kernels/parallel.h) under ThreadSanitizer: .ci/sanitize.sh
 * builds this with -fsanitize=thread and runs it; any data race report, a part run
 * twice or never, or a hang fails the gate.
 *
 * One caller posts runs of jobs, long ones (which always wake the helper) and short
 * ones (which a sleeping helper is left out of, the caller taking its part), with
 * pauses longer than the helper's spin between some runs, so that every path is taken:
 * the helper's part claimed by the helper, by the caller while the helper sleeps, by
 * the caller while it is waking. Then two callers at once contend for the helper (the
 * one that does not own it runs alone), while a third thread turns the CPU-quota rule
 * (fr_pool_set_quota_alone: every caller alone) on and off. Each job's two parts write
 * their own rows; the caller checks both after every job. */
#include "parallel.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { ROW = 64 };

typedef struct {
    int rows[2][ROW];
    int job;
} job_t;

static void part(void *arg, int which)
{
    job_t *j = arg;
    for (int i = 0; i < ROW; i++)
        j->rows[which][i] = j->job + i;
}

static int check(const job_t *j)
{
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < ROW; i++)
            if (j->rows[p][i] != j->job + i) {
                fprintf(stderr, "pool_race: job %d: part %d not run\n", j->job, p);
                return 1;
            }
    return 0;
}

static void *caller(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    const int runs = seed == 1 ? 20000 : 5000;
    job_t j = {.job = 0};
    for (int r = 0; r < runs; r++) {
        const int owner = fr_pool_acquire();
        const int steps = 1 + rand_r(&seed) % 20;
        for (int s = 0; s < steps; s++) {
            j.job++;
            if (owner) {
                fr_pool_run(part, &j, rand_r(&seed) % 3 == 0 ? FR_LONG_JOB : 1e3);
            } else {
                part(&j, 0);
                part(&j, 1);
            }
            if (check(&j))
                exit(1);
        }
        if (owner)
            fr_pool_release();
        if (rand_r(&seed) % 400 == 0)
            usleep(300 + rand_r(&seed) % 2000);   /* past FR_SPIN_NS: the helper sleeps */
    }
    return NULL;
}

static atomic_int callers_done;

static void *quota_toggler(void *arg)
{
    (void)arg;
    for (int i = 0; !atomic_load(&callers_done); i++) {
        fr_pool_set_quota_alone(i & 1);
        usleep(200);
    }
    fr_pool_set_quota_alone(0);
    return NULL;
}

int main(void)
{
    caller((void *)1);
    pthread_t a, b, q;
    if (pthread_create(&a, NULL, caller, (void *)2) || pthread_create(&b, NULL, caller, (void *)3)
        || pthread_create(&q, NULL, quota_toggler, NULL)) {
        fprintf(stderr, "pool_race: pthread_create failed\n");
        return 1;
    }
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    atomic_store(&callers_done, 1);
    pthread_join(q, NULL);
    puts("pool_race: ok");
    return 0;
}
