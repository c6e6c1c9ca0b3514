/* OpenMP on the LWK (gcc -fopenmp, libgomp): the default team size and a
 * reduction, and which CPUs the team ran on. */
#define _GNU_SOURCE
#include <omp.h>
#include <sched.h>
#include <stdio.h>

int main(void) {
    int n = 0;
    long sum = 0;
    unsigned long cpus = 0;
#pragma omp parallel reduction(+ : sum)
    {
#pragma omp single
        n = omp_get_num_threads();
        int c = sched_getcpu();
#pragma omp critical
        if (c >= 0 && c < 64) cpus |= 1UL << c;
        for (long i = omp_get_thread_num(); i < 1000000; i += omp_get_num_threads()) sum += i;
    }
    int k = 0;
    for (int c = 0; c < 64; c++) k += (cpus >> c) & 1;
    printf("threads %d sum %ld cpus %d\n", n, sum, k);
    return sum == 499999500000L ? 0 : 1;
}
