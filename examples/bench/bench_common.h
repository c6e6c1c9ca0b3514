/*
 * Shared helpers of the benchmark programs (fwq, stream, gups, syscall).
 *
 * Every program is compiled once, statically, by the bench harness
 * (benches/, package mck-bench) and the same binary runs under mcexec on the
 * LWK and natively on Linux.  Programs only time and print: statistics,
 * targets and plots are the harness's job.  Output on stdout is one
 * "key value..." record per line, parsed by the harness.
 *
 * Timing uses the TSC (rdtsc fenced with lfence); its frequency is
 * calibrated against CLOCK_MONOTONIC at start and printed as "tsc_hz".
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t tsc_begin(void)
{
	uint32_t lo, hi;
	/* lfence: earlier instructions retire before the TSC is read. */
	__asm__ __volatile__("lfence\n\trdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t tsc_end(void)
{
	uint32_t lo, hi;
	/* rdtscp waits for earlier instructions; lfence keeps later ones after. */
	__asm__ __volatile__("rdtscp\n\tlfence" : "=a"(lo), "=d"(hi)::"rcx", "memory");
	return ((uint64_t)hi << 32) | lo;
}

static inline double now_sec(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("clock_gettime");
		exit(2);
	}
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* TSC ticks per second, measured over about 100 ms of CLOCK_MONOTONIC. */
static inline double calibrate_tsc_hz(void)
{
	double t0 = now_sec(), t1;
	uint64_t c0 = tsc_begin(), c1;
	do {
		t1 = now_sec();
	} while (t1 - t0 < 0.1);
	c1 = tsc_end();
	return (double)(c1 - c0) / (t1 - t0);
}

/* Parses a positive decimal integer argument or exits with a clear message. */
static inline uint64_t parse_count(const char *prog, const char *what, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 || s[0] == '-') {
		fprintf(stderr, "%s: %s must be a positive integer, got '%s'\n", prog, what, s);
		exit(2);
	}
	return (uint64_t)v;
}

/* Writes one sample per line to path; exits on any I/O error. */
static inline void write_samples(const char *prog, const char *path, const uint64_t *s, uint64_t n)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "%s: cannot create %s: %s\n", prog, path, strerror(errno));
		exit(2);
	}
	static char buf[1 << 16];
	setvbuf(f, buf, _IOFBF, sizeof(buf));
	for (uint64_t i = 0; i < n; i++)
		fprintf(f, "%llu\n", (unsigned long long)s[i]);
	if (fclose(f) != 0) {
		fprintf(stderr, "%s: writing %s: %s\n", prog, path, strerror(errno));
		exit(2);
	}
}

/* Allocates and touches n samples so that no page fault lands in a timed region. */
static inline uint64_t *alloc_samples(const char *prog, uint64_t n)
{
	uint64_t *s = malloc(n * sizeof(*s));
	if (!s) {
		fprintf(stderr, "%s: cannot allocate %llu samples\n", prog, (unsigned long long)n);
		exit(2);
	}
	memset(s, 0, n * sizeof(*s));
	return s;
}

#endif
