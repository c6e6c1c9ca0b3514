/* A utility thread with the hints named on the command line
 * (EXCLUSIVE_CPU, SAME_NUMA_DOMAIN, PREFER_LWK, PREFER_FWK) that prints
 * "tid T" and spins; the main thread prints "main" and waits. For
 * placement checks from outside (the test reads /proc of mcexec).
 * FAILED_FIRST: first a uti_pthread_create that fails before its clone
 * (a stack too large to map), then a plain pthread_create of the thread,
 * which must be an ordinary thread. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uti.h>

static void *spin(void *arg)
{
    (void)arg;
    printf("tid %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    for (volatile unsigned long i = 0;; i++)
        ;
    return NULL;
}

int main(int argc, char **argv)
{
    uti_attr_t ua;
    pthread_t th;
    uti_attr_init(&ua);
    int failed_first = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "FAILED_FIRST")) {
            failed_first = 1;
            continue;
        }
        if (!strcmp(argv[i], "EXCLUSIVE_CPU"))
            UTI_ATTR_EXCLUSIVE_CPU(&ua);
        else if (!strcmp(argv[i], "SAME_NUMA_DOMAIN"))
            UTI_ATTR_SAME_NUMA_DOMAIN(&ua);
        else if (!strcmp(argv[i], "PREFER_LWK"))
            UTI_ATTR_PREFER_LWK(&ua);
        else if (!strcmp(argv[i], "PREFER_FWK"))
            UTI_ATTR_PREFER_FWK(&ua);
        else
            return 2;
    }
    int rc;
    if (failed_first) {
        pthread_attr_t big;
        pthread_attr_init(&big);
        pthread_attr_setstacksize(&big, 1UL << 46);
        rc = uti_pthread_create(&th, &big, spin, NULL, &ua);
        if (rc == 0) {
            printf("uti_pthread_create with a 64 TiB stack succeeded\n");
            return 1;
        }
        rc = pthread_create(&th, NULL, spin, NULL);
    } else {
        rc = uti_pthread_create(&th, NULL, spin, NULL, &ua);
    }
    if (rc != 0) {
        printf("uti_pthread_create %s\n", strerror(rc));
        return 1;
    }
    printf("main\n");
    fflush(stdout);
    unsigned never = 0;
    for (;;)
        syscall(SYS_futex, &never, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}
