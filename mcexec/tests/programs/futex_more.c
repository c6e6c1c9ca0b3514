/* Futex paths beyond plain mutexes: a timed lock that times out (absolute
 * CLOCK_REALTIME deadline), a sem_timedwait on CLOCK_MONOTONIC, a robust
 * mutex whose owner thread dies holding it (EOWNERDEAD), a condition
 * broadcast to three waiters, and sched_setaffinity moving a thread
 * between CPUs (sched_getcpu agrees). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t robust;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go, woke;

static double now(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void *die_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL; /* ends without unlocking */
}

static void *waiter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&m);
    while (!go) pthread_cond_wait(&cv, &m);
    woke++;
    pthread_mutex_unlock(&m);
    return NULL;
}

static int on_cpu(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s) != 0) return -1;
    sched_yield();
    return sched_getcpu();
}

static struct timespec deadline;
static int timed_result;

static void *timed(void *arg) {
    (void)arg;
    timed_result = pthread_mutex_timedlock(&held, &deadline);
    return NULL;
}

static void *mover(void *arg) {
    int *r = arg;
    r[0] = on_cpu(1);
    r[1] = on_cpu(0);
    return NULL;
}

int main(void) {
    /* The lock is ours: a second thread's timed lock must time out. */
    pthread_mutex_lock(&held);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 200000000;
    if (deadline.tv_nsec >= 1000000000) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000; }
    double t0 = now(CLOCK_MONOTONIC);
    pthread_t locker;
    pthread_create(&locker, NULL, timed, NULL);
    pthread_join(locker, NULL);
    double waited = now(CLOCK_MONOTONIC) - t0;
    printf("timedlock %s %s\n", timed_result == ETIMEDOUT ? "ETIMEDOUT" : "WRONG",
           waited >= 0.15 && waited < 5 ? "in-time" : "off-time");

    sem_t sem;
    struct timespec dl;
    int r;
    sem_init(&sem, 0, 0);
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_nsec += 100000000;
    if (dl.tv_nsec >= 1000000000) { dl.tv_sec++; dl.tv_nsec -= 1000000000; }
    r = sem_clockwait(&sem, CLOCK_MONOTONIC, &dl);
    printf("semwait %s\n", r == -1 && errno == ETIMEDOUT ? "ETIMEDOUT" : "WRONG");

    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &a);
    pthread_t d;
    pthread_create(&d, NULL, die_holding, NULL);
    pthread_join(d, NULL);
    r = pthread_mutex_lock(&robust);
    printf("robust %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : "WRONG");
    if (r == EOWNERDEAD) pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);

    pthread_t w[3];
    for (int i = 0; i < 3; i++) pthread_create(&w[i], NULL, waiter, NULL);
    usleep(100000);
    pthread_mutex_lock(&m);
    go = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&m);
    for (int i = 0; i < 3; i++) pthread_join(w[i], NULL);
    printf("broadcast %d\n", woke);

    int cpus[2] = {-1, -1};
    pthread_t mv;
    pthread_create(&mv, NULL, mover, cpus);
    pthread_join(mv, NULL);
    printf("moved %d %d\n", cpus[0], cpus[1]);
    return 0;
}
