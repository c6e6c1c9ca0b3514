/* The main thread leaves first (pthread_exit) and the process's last thread
 * exits on the other LWK CPU, so the slot's CPU and the last thread's CPU
 * both see the exit. The last thread prints both CPUs. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

static int main_cpu;

static void *last(void *arg)
{
    (void)arg;
    usleep(2000);
    printf("main %d last %d\n", main_cpu, sched_getcpu());
    fflush(stdout);
    return NULL;
}

int main(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    int me = sched_getcpu(), other = -1;
    main_cpu = me;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set) && c != me) {
            other = c;
            break;
        }
    pthread_attr_t a;
    pthread_attr_init(&a);
    if (other >= 0) {
        CPU_ZERO(&set);
        CPU_SET(other, &set);
        pthread_attr_setaffinity_np(&a, sizeof set, &set);
    }
    pthread_t t;
    if (pthread_create(&t, &a, last, NULL) != 0)
        return 1;
    pthread_exit(NULL);
}
