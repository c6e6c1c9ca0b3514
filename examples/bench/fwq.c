/*
 * FWQ (fixed work quanta): times <samples> repetitions of the same fixed
 * loop of <work> dependent multiply-adds on one CPU.  On a quiet CPU every
 * quantum takes the same time; anything longer is OS noise (ticks,
 * interrupts, other tasks, host exits).
 *
 * usage: fwq <samples> <work> <out-file> [<start-file>]
 * stdout: tsc_hz, samples, work, and "done"; <out-file>: one quantum
 * length in TSC ticks per line, in order; <start-file>: the TSC at the
 * start of each quantum, in order (to match stalls with the LWK's noise
 * trace, `ihkosctl 0 trace`, which uses the same TSC).
 */
#include "bench_common.h"

static const char *prog = "fwq";

/* The fixed work: a chain of dependent integer ops the compiler cannot fold. */
static inline uint64_t work(uint64_t iters, uint64_t x)
{
	for (uint64_t i = 0; i < iters; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		__asm__ __volatile__("" : "+r"(x));
	}
	return x;
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: %s <samples> <work> <out-file> [<start-file>]\n", prog);
		return 2;
	}
	uint64_t n = parse_count(prog, "samples", argv[1]);
	uint64_t iters = parse_count(prog, "work", argv[2]);
	uint64_t *s = alloc_samples(prog, n);
	uint64_t *start = alloc_samples(prog, n);
	double hz = calibrate_tsc_hz();

	uint64_t x = 1;
	for (int i = 0; i < 200; i++) /* warm-up: caches, branch predictors, frequency */
		x = work(iters, x);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = tsc_begin();
		x = work(iters, x);
		uint64_t t1 = tsc_end();
		s[i] = t1 - t0;
		start[i] = t0;
	}
	write_samples(prog, argv[3], s, n);
	if (argc == 5)
		write_samples(prog, argv[4], start, n);
	printf("tsc_hz %.0f\nsamples %llu\nwork %llu\nsink %llu\ndone\n", hz,
	       (unsigned long long)n, (unsigned long long)iters, (unsigned long long)(x & 1));
	return 0;
}
