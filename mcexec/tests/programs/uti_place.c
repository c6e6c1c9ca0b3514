/* A utility thread with the hints named on the command line
 * (EXCLUSIVE_CPU, SAME_NUMA_DOMAIN, PREFER_LWK, PREFER_FWK) that prints
 * "tid T" and spins; the main thread prints "main" and waits. For
 * placement checks from outside (the test reads /proc of mcexec). */
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
    for (int i = 1; i < argc; i++) {
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
    int rc = uti_pthread_create(&th, NULL, spin, NULL, &ua);
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
