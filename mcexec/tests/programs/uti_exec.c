/* A utility thread computes without system calls on Linux; the main thread
 * then execve()s busybox echo, which must end the utility thread first. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <uti.h>

static atomic_int spinning;

static void *spin(void *arg)
{
    (void)arg;
    atomic_store(&spinning, 1);
    for (volatile unsigned long i = 0;; i++)
        ;
    return NULL;
}

int main(void)
{
    uti_attr_t ua;
    pthread_t th;
    uti_attr_init(&ua);
    if (uti_pthread_create(&th, NULL, spin, NULL, &ua) != 0)
        return 1;
    while (!atomic_load(&spinning))
        ;
    execl("/bin/busybox", "busybox", "echo", "exec after a utility thread", (char *)NULL);
    return 2;
}
