/* Round trips of three system calls, timed with the TSC in user mode:
 *   fcntl(fd, F_GETFL) on a host file: offloaded under mcexec,
 *   getpid: answered locally by the LWK,
 *   getppid: what native Linux takes (the bench runs this program on Linux
 *   too).
 * Prints "<name> <median ns>" per call; the median is over batches. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define BATCHES 31

static double ns_per_tick;

static void calibrate(void) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    uint64_t t0 = __rdtsc();
    do clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 100000000L);
    uint64_t t1 = __rdtsc();
    ns_per_tick = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)(t1 - t0);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench(const char *name, long nr, long a0, long a1, int per_batch) {
    double v[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        uint64_t t0 = __rdtsc();
        for (int i = 0; i < per_batch; i++)
            syscall(nr, a0, a1);
        uint64_t t1 = __rdtsc();
        v[b] = (t1 - t0) * ns_per_tick / per_batch;
    }
    qsort(v, BATCHES, sizeof v[0], cmp);
    printf("%s %.1f\n", name, v[BATCHES / 2]);
}

int main(int argc, char **argv) {
    int per_batch = argc > 1 ? atoi(argv[1]) : 100;
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0) { perror("/dev/null"); return 1; }
    calibrate();
    bench("fcntl_getfl", SYS_fcntl, fd, F_GETFL, per_batch);
    bench("getpid", SYS_getpid, 0, 0, per_batch);
    bench("getppid", SYS_getppid, 0, 0, per_batch);
    return 0;
}
