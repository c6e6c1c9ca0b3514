/*
 * entry: the user-mode side of the kernel-entry experiment (docs/pvm.md,
 * scripts/pvm-probe.sh). Times, in TSC ticks (minimum and median of
 * <reps> runs):
 *   loop     the LWK probe's `dec; jnz` loop, 65536 iterations, in ring 3
 *   getpid   one raw getpid system call (always enters the kernel)
 *   fcntl    one fcntl(F_GETFL) on /dev/null (offloaded by the LWK)
 *   clock    one clock_gettime(CLOCK_MONOTONIC) through libc (the vDSO
 *            when the kernel gives one)
 *   mmap64m  mmap of 64 MiB, a write to every 4 KiB page, munmap (5 runs)
 * and prints whether the process has a vDSO (AT_SYSINFO_EHDR).
 * stdout: "key value" lines; the same static binary runs under mcexec and
 * natively.
 */
#include "bench_common.h"
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *name, uint64_t *t, int n, double per)
{
	qsort(t, n, sizeof t[0], cmp_u64);
	printf("%s_ticks min %.3f median %.3f\n", name, t[0] / per, t[n / 2] / per);
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 101;
	if (reps < 1 || reps > 100000) {
		fprintf(stderr, "usage: entry [<reps>]\n");
		return 2;
	}
	uint64_t *t = calloc(reps, sizeof *t);
	struct timespec ts;
	const uint64_t loop_n = 65536;
	printf("vdso %#lx\n", getauxval(AT_SYSINFO_EHDR));
	for (int i = 0; i < reps; i++) {
		uint64_t n = loop_n, c0 = tsc_begin();
		__asm__ __volatile__("1: dec %0\n\tjnz 1b" : "+r"(n));
		t[i] = tsc_end() - c0;
	}
	report("loop_per_iter", t, reps, (double)loop_n);
	for (int i = 0; i < reps; i++) {
		uint64_t c0 = tsc_begin();
		syscall(SYS_getpid);
		t[i] = tsc_end() - c0;
	}
	report("getpid", t, reps, 1.0);
	int fd = open("/dev/null", O_RDONLY);
	for (int i = 0; i < reps; i++) {
		uint64_t c0 = tsc_begin();
		if (fcntl(fd, F_GETFL) < 0) {
			perror("fcntl");
			return 1;
		}
		t[i] = tsc_end() - c0;
	}
	report("fcntl", t, reps, 1.0);
	for (int i = 0; i < reps; i++) {
		uint64_t c0 = tsc_begin();
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t[i] = tsc_end() - c0;
	}
	report("clock_gettime", t, reps, 1.0);
	for (int i = 0; i < 5; i++) {
		uint64_t c0 = tsc_begin();
		volatile char *m = mmap(NULL, 64UL << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		for (size_t off = 0; off < (64UL << 20); off += 4096)
			m[off] = 1;
		munmap((void *)m, 64UL << 20);
		t[i] = tsc_end() - c0;
	}
	report("mmap64m", t, 5, 1.0);
	printf("done\n");
	return 0;
}
