#include "util/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct ragd_pool {
    int n_threads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t run_lock; /* serialises ragd_pool_run callers */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    /* current job */
    ragd_pool_fn fn;
    void *ctx;
    size_t n;
    atomic_size_t next;
    /* join protocol: a worker joins the current job by incrementing `joined` while
     * JOB_CLOSED is clear; the caller sets JOB_CLOSED once its own share is done and waits only
     * for the workers that joined (done == joined). A worker that wakes late - the caller
     * already took every task - is not waited for. */
    atomic_uint joined;
    atomic_uint done;
    atomic_uint generation;
    bool stop;
};

#define JOB_CLOSED 0x80000000u

typedef struct {
    ragd_pool *pool;
    int tid;
} worker_arg;

static void do_work(ragd_pool *p, int tid) {
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= p->n) break;
        p->fn(p->ctx, i, tid);
    }
}

static void *worker_main(void *argp) {
    worker_arg *arg = argp;
    ragd_pool *p = arg->pool;
    int tid = arg->tid;
    free(arg);
    unsigned seen = 0; /* generation at creation: a job may start before this thread runs */
    for (;;) {
        /* spin briefly for the next job: forward passes issue many short runs */
        unsigned gen = 0;
        for (int spin = 0; spin < 20000; spin++) {
            gen = atomic_load_explicit(&p->generation, memory_order_acquire);
            if (gen != seen) break;
            if (spin > 100) sched_yield();
        }
        if (gen == seen) {
            pthread_mutex_lock(&p->mu);
            while (!p->stop && atomic_load(&p->generation) == seen)
                pthread_cond_wait(&p->cv_work, &p->mu);
            pthread_mutex_unlock(&p->mu);
            gen = atomic_load(&p->generation);
        }
        if (p->stop) return NULL;
        seen = gen;
        unsigned j = atomic_load_explicit(&p->joined, memory_order_acquire);
        bool in = false;
        while (!(j & JOB_CLOSED) && !in)
            in = atomic_compare_exchange_weak_explicit(&p->joined, &j, j + 1, memory_order_acq_rel,
                                                       memory_order_acquire);
        if (!in) continue; /* the caller already finished this job alone */
        do_work(p, tid);
        unsigned d = atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1;
        j = atomic_load_explicit(&p->joined, memory_order_acquire);
        if ((j & JOB_CLOSED) && d == (j & ~JOB_CLOSED)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

ragd_pool *ragd_pool_create(int n_threads) {
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    ragd_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->joined, JOB_CLOSED);
    atomic_init(&p->done, 0);
    atomic_init(&p->generation, 0);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof(pthread_t));
        if (!p->threads) {
            free(p);
            return NULL;
        }
        for (int t = 1; t < n_threads; t++) {
            worker_arg *a = malloc(sizeof *a);
            if (!a) {
                p->n_threads = t;
                ragd_pool_destroy(p);
                return NULL;
            }
            a->pool = p;
            a->tid = t;
            if (pthread_create(&p->threads[t - 1], NULL, worker_main, a) != 0) {
                free(a);
                p->n_threads = t;
                ragd_pool_destroy(p);
                return NULL;
            }
        }
    }
    return p;
}

void ragd_pool_destroy(ragd_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->n_threads; t++) pthread_join(p->threads[t - 1], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->run_lock);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p);
}

int ragd_pool_size(const ragd_pool *p) {
    return p ? p->n_threads : 1;
}

void ragd_pool_run(ragd_pool *p, size_t n, ragd_pool_fn fn, void *ctx) {
    if (n == 0) return;
    if (!p || p->n_threads == 1 || n == 1) {
        for (size_t i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->done, 0);
    atomic_store_explicit(&p->joined, 0, memory_order_release); /* opens the job */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    do_work(p, 0);
    /* close the job, then wait for the workers that joined it: spin first, then sleep */
    unsigned n_in = atomic_fetch_or_explicit(&p->joined, JOB_CLOSED, memory_order_acq_rel);
    for (int spin = 0; spin < 20000 && atomic_load(&p->done) < n_in; spin++)
        if (spin > 100) sched_yield();
    if (atomic_load(&p->done) < n_in) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->done) < n_in) pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->run_lock);
}
