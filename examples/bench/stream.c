/*
 * STREAM-style memory bandwidth, single thread: copy (c = a), scale
 * (b = s*c), add (c = a+b) and triad (a = b+s*c) over three arrays of
 * <n> doubles, repeated <ntimes> times.  Choose n so that each array is
 * well above the last-level cache (the harness uses 8x LLC).
 *
 * usage: stream <n> <ntimes>
 * stdout: "rate <kernel> <iteration> <MB/s>" per kernel and iteration
 * (MB = 1e6 bytes, bytes counted as STREAM does), then "valid 1" when the
 * final array contents match the expected values, "valid 0" otherwise.
 */
#include "bench_common.h"
#include <math.h>

static const char *prog = "stream";

static double *alloc_array(uint64_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, 4096, n * sizeof(double)) != 0) {
		fprintf(stderr, "%s: cannot allocate %llu doubles\n", prog, (unsigned long long)n);
		exit(2);
	}
	return p;
}

static int check(const double *a, const double *b, const double *c, uint64_t n, uint64_t ntimes,
		 double scalar)
{
	/* Replay the kernels on scalars, as STREAM's checkSTREAMresults does. */
	double aj = 1.0, bj = 2.0, cj = 0.0;
	aj = 2.0 * aj; /* the initial timing pass of STREAM is not done here */
	for (uint64_t k = 0; k < ntimes; k++) {
		cj = aj;
		bj = scalar * cj;
		cj = aj + bj;
		aj = bj + scalar * cj;
	}
	double ea = 0, eb = 0, ec = 0;
	for (uint64_t j = 0; j < n; j++) {
		ea += fabs(a[j] - aj);
		eb += fabs(b[j] - bj);
		ec += fabs(c[j] - cj);
	}
	ea /= n, eb /= n, ec /= n;
	const double eps = 1e-13;
	return fabs(ea / aj) < eps && fabs(eb / bj) < eps && fabs(ec / cj) < eps;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s <n> <ntimes>\n", prog);
		return 2;
	}
	uint64_t n = parse_count(prog, "n", argv[1]);
	uint64_t ntimes = parse_count(prog, "ntimes", argv[2]);
	double *a = alloc_array(n), *b = alloc_array(n), *c = alloc_array(n);
	const double scalar = 3.0;

	for (uint64_t j = 0; j < n; j++) {
		a[j] = 1.0;
		b[j] = 2.0;
		c[j] = 0.0;
	}
	for (uint64_t j = 0; j < n; j++)
		a[j] = 2.0 * a[j];

	static const char *names[4] = { "copy", "scale", "add", "triad" };
	const double bytes[4] = { 2.0 * sizeof(double) * n, 2.0 * sizeof(double) * n,
				  3.0 * sizeof(double) * n, 3.0 * sizeof(double) * n };
	for (uint64_t k = 0; k < ntimes; k++) {
		double t[5];
		t[0] = now_sec();
		for (uint64_t j = 0; j < n; j++)
			c[j] = a[j];
		t[1] = now_sec();
		for (uint64_t j = 0; j < n; j++)
			b[j] = scalar * c[j];
		t[2] = now_sec();
		for (uint64_t j = 0; j < n; j++)
			c[j] = a[j] + b[j];
		t[3] = now_sec();
		for (uint64_t j = 0; j < n; j++)
			a[j] = b[j] + scalar * c[j];
		t[4] = now_sec();
		for (int i = 0; i < 4; i++)
			printf("rate %s %llu %.1f\n", names[i], (unsigned long long)k,
			       bytes[i] / (t[i + 1] - t[i]) / 1e6);
	}
	printf("n %llu\nvalid %d\n", (unsigned long long)n, check(a, b, c, n, ntimes, scalar));
	return 0;
}
