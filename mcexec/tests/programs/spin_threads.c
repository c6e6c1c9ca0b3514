/* Five threads computing forever in user mode; says so once all run. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_barrier_t b;

static void *spin(void *arg) {
    (void)arg;
    pthread_barrier_wait(&b);
    volatile unsigned long x = 0;
    for (;;) x++;
    return NULL;
}

int main(void) {
    pthread_t t[5];
    pthread_barrier_init(&b, NULL, 6);
    for (int i = 0; i < 5; i++) pthread_create(&t[i], NULL, spin, NULL);
    pthread_barrier_wait(&b);
    write(1, "spinning\n", 9);
    for (;;) pause();
}
