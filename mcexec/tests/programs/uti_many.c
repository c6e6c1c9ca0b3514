/* Utility threads one after the other: uti_many N creates and joins N
 * threads (each makes a forwarded call, gettid, and returns its index);
 * after the first 2 it prints "checkpoint" and waits for a line on stdin,
 * after all N it prints "ended N" and waits again, so that the caller can
 * read mcexec's memory at both points. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uti.h>

static void *work(void *arg)
{
    if (gettid() <= 0)
        return NULL;
    return arg;
}

static void wait_line(void)
{
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        exit(4);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10;
    for (long i = 0; i < n; i++) {
        uti_attr_t ua;
        pthread_t th;
        void *ret;
        uti_attr_init(&ua);
        if (uti_pthread_create(&th, NULL, work, (void *)(i + 1), &ua) != 0)
            return 1;
        if (pthread_join(th, &ret) != 0 || ret != (void *)(i + 1))
            return 2;
        if (i == 1) {
            printf("checkpoint\n");
            fflush(stdout);
            wait_line();
        }
    }
    printf("ended %d\n", n);
    fflush(stdout);
    wait_line();
    return 0;
}
