/* A utility thread (uti_pthread_create, default hints) and the main thread
 * exchange values through a futex-based queue, and ping-pong through a
 * futex word so that each side waits for the other.
 *
 * Prints "uti cpu C affinity A" (the utility thread's sched_getcpu and its
 * affinity as a CPU list's first and last CPU), "main cpu C", "pingpong N",
 * "received N sum S", and exits with 3.
 * With the argument "hang": the utility thread spins forever and main
 * waits forever (for kill -9). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uti.h>

#define VALUES 100000
#define CAP 512
#define ROUNDS 50

static unsigned long ring[CAP];
static atomic_uint head;   /* values written (producer) */
static atomic_uint tail;   /* values read (consumer) */
static atomic_uint turn;   /* ping-pong: whose turn, 0 main, 1 utility */
static atomic_int hang;

static long futex(atomic_uint *w, int op, unsigned v)
{
    return syscall(SYS_futex, w, op, v, NULL, NULL, 0);
}

/* Wait until *w != seen (spinning a little first). */
static void wait_change(atomic_uint *w, unsigned seen)
{
    for (int i = 0; i < 2000; i++)
        if (atomic_load(w) != seen)
            return;
    while (atomic_load(w) == seen)
        if (futex(w, FUTEX_WAIT_PRIVATE, seen) < 0 && errno != EAGAIN && errno != EINTR) {
            perror("futex wait");
            exit(10);
        }
}

static void *utility(void *arg)
{
    (void)arg;
    cpu_set_t set;
    int lo = -1, hi = -1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set)) {
                if (lo < 0)
                    lo = c;
                hi = c;
            }
    printf("uti cpu %d affinity %d-%d\n", sched_getcpu(), lo, hi);
    fflush(stdout);
    if (atomic_load(&hang))
        for (;;)
            ;
    /* Ping-pong: the utility thread waits for its turn, then gives it back. */
    for (int r = 0; r < ROUNDS; r++) {
        wait_change(&turn, 0);
        atomic_store(&turn, 0);
        futex(&turn, FUTEX_WAKE_PRIVATE, 1);
    }
    /* Producer: 1..VALUES, waiting when the ring is full. */
    for (unsigned long v = 1; v <= VALUES; v++) {
        unsigned h = atomic_load(&head);
        unsigned t;
        while (h - (t = atomic_load(&tail)) == CAP)
            wait_change(&tail, t);
        ring[h % CAP] = v * 7;
        atomic_store(&head, h + 1);
        if (v % (CAP / 4) == 0 || v == VALUES)
            futex(&head, FUTEX_WAKE_PRIVATE, 1);
    }
    return (void *)42;
}

int main(int argc, char **argv)
{
    atomic_store(&hang, argc > 1 && strcmp(argv[1], "hang") == 0);
    uti_attr_t ua;
    pthread_t th;
    if (uti_attr_init(&ua) != 0)
        return 11;
    int rc = uti_pthread_create(&th, NULL, utility, NULL, &ua);
    if (rc != 0) {
        fprintf(stderr, "uti_pthread_create: %s\n", strerror(rc));
        return 12;
    }
    printf("main cpu %d\n", sched_getcpu());
    fflush(stdout);
    if (atomic_load(&hang)) {
        atomic_uint never = 0;
        for (;;)
            futex(&never, FUTEX_WAIT_PRIVATE, 0);
    }
    int rounds = 0;
    for (int r = 0; r < ROUNDS; r++) {
        atomic_store(&turn, 1);
        futex(&turn, FUTEX_WAKE_PRIVATE, 1);
        wait_change(&turn, 1);
        rounds++;
    }
    printf("pingpong %d\n", rounds);
    unsigned long sum = 0, n = 0, expect = 1;
    while (n < VALUES) {
        unsigned t = atomic_load(&tail);
        unsigned h;
        while ((h = atomic_load(&head)) == t)
            wait_change(&head, h);
        for (; t != h; t++, n++) {
            unsigned long v = ring[t % CAP];
            if (v != expect * 7) {
                printf("bad value %lu at %lu\n", v, n);
                return 13;
            }
            expect++;
            sum += v;
        }
        atomic_store(&tail, t);
        futex(&tail, FUTEX_WAKE_PRIVATE, 1);
    }
    void *ret;
    pthread_join(th, &ret);
    printf("received %lu sum %lu joined %ld\n", n, sum, (long)ret);
    uti_attr_destroy(&ua);
    return 3;
}
