/* Threads on the LWK: mutex-protected counting by 4 threads, a condition
 * variable hand-off, pthread_cancel of a thread blocked in sleep(), and
 * which CPUs the threads ran on. Prints one line per check. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 4
#define ITERS 200000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static unsigned long cpus_seen; /* bit per CPU a worker ran on */

static pthread_barrier_t start; /* all workers live at once: spread over CPUs */

static void *count(void *arg) {
    (void)arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < ITERS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        if (i % 20000 == 0) {
            int c = sched_getcpu();
            if (c >= 0 && c < 64) cpus_seen |= 1UL << c;
        }
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ball; /* 0: main's turn, 1: the other's */
static int rounds_done;

static void *pong(void *arg) {
    (void)arg;
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&m);
        while (ball != 1) pthread_cond_wait(&cv, &m);
        ball = 0;
        rounds_done++;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    sleep(1000);
    return (void *)1; /* never: cancelled */
}

int main(void) {
    pthread_t t[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, count, NULL) != 0) { perror("pthread_create"); return 1; }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    printf("counter %ld\n", counter);

    pthread_t p;
    pthread_create(&p, NULL, pong, NULL);
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&m);
        ball = 1;
        pthread_cond_signal(&cv);
        while (ball != 0) pthread_cond_wait(&cv, &m);
        pthread_mutex_unlock(&m);
    }
    pthread_join(p, NULL);
    printf("handoff %d\n", rounds_done);

    pthread_t s;
    void *ret = NULL;
    pthread_create(&s, NULL, sleeper, NULL);
    usleep(100000);
    pthread_cancel(s);
    pthread_join(s, &ret);
    printf("cancel %s\n", ret == PTHREAD_CANCELED ? "ok" : "FAILED");

    int n = 0;
    for (int c = 0; c < 64; c++) if (cpus_seen & (1UL << c)) n++;
    printf("cpus %d\n", n);
    return 0;
}
