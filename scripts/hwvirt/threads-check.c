/* The 2-thread check of the hardware-virtualization run
 * (scripts/hwvirt-check.sh; MCK_HWVIRT_THREADS=0 leaves it out).
 *
 * Built with `gcc -static -O2 -mavx2 -pthread`. Two threads of one LWK
 * process each fill their own array with an AVX2 kernel, yield to each other
 * many times and add to a shared counter under a mutex (futex); main joins
 * them and checks the arrays against scalar code and the counter.
 * Prints "threads-check: ok ..." and exits 0, or "threads-check: FAIL ...".
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>

enum { N = 4096, ROUNDS = 200 };
static int32_t out[2][N];
static long counter;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int32_t expect(int t, int i)
{
    return (int32_t)((uint32_t)(i + t * 1000) * 2654435761u);
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    const __m256i mul = _mm256_set1_epi32((int32_t)2654435761u);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = (r % 8) * (N / 8); i < (r % 8 + 1) * (N / 8); i += 8) {
            __m256i v = _mm256_add_epi32(_mm256_set1_epi32(i + t * 1000), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            _mm256_storeu_si256((__m256i *)&out[t][i], _mm256_mullo_epi32(v, mul));
        }
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        sched_yield();
    }
    return NULL;
}

int main(void)
{
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) != 0) {
            printf("threads-check: FAIL pthread_create %d\n", t);
            return 1;
        }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < N; i++)
            if (out[t][i] != expect(t, i)) {
                printf("threads-check: FAIL thread %d: out[%d] = %d, want %d\n", t, i, out[t][i], expect(t, i));
                return 1;
            }
    if (counter != 2 * ROUNDS) {
        printf("threads-check: FAIL counter %ld, want %d\n", counter, 2 * ROUNDS);
        return 1;
    }
    printf("threads-check: ok 2 threads, AVX2 results and %d mutex increments\n", 2 * ROUNDS);
    return 0;
}
