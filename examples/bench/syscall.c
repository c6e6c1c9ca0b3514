/*
 * System call latency: <iters> timed calls of one operation, each timed on
 * its own with the TSC, after 1000 untimed warm-up calls (3 for mmap64m).
 *
 * usage: syscall <op> <iters> <out-file> [<max-seconds>]
 *   getpid    syscall(SYS_getpid)     (answered by the LWK itself)
 *   getppid   syscall(SYS_getppid)    (answered by the LWK itself)
 *   fcntl     fcntl(fd, F_GETFL) on an fd of /dev/null  (offloaded to Linux)
 *   write1    write(fd, buf, 1) to /dev/null            (offloaded)
 *   write64k  write(fd, buf, 65536) to /dev/null        (offloaded)
 *   clock     clock_gettime(CLOCK_MONOTONIC) through libc (the vDSO where
 *             the kernel gives one, as on Linux)
 *   mmap64m   mmap of 64 MiB anonymous memory, a write to every 4 KiB page,
 *             munmap (one "call" is all three)
 * With <max-seconds>, the run stops early once that much time has passed
 * (a slow system still finishes in bounded time); "iters" then says how
 * many calls were timed.
 * Every call's result is checked; a failing call aborts the run.
 * stdout: tsc_hz, op, iters, "done"; <out-file>: per-call TSC ticks.
 */
#include "bench_common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *prog = "syscall";

enum op { OP_GETPID, OP_GETPPID, OP_FCNTL, OP_WRITE1, OP_WRITE64K, OP_CLOCK, OP_MMAP64M };

#define MMAP_BYTES (64UL << 20)

static char buf[65536];

static void fail(const char *what, long ret)
{
	fprintf(stderr, "%s: %s returned %ld (%s)\n", prog, what, ret, strerror(errno));
	exit(1);
}

static inline void one_call(enum op op, int fd, long expect)
{
	long r;
	switch (op) {
	case OP_GETPID:
		r = syscall(SYS_getpid);
		if (r != expect)
			fail("getpid", r);
		break;
	case OP_GETPPID:
		r = syscall(SYS_getppid);
		if (r != expect)
			fail("getppid", r);
		break;
	case OP_FCNTL:
		r = fcntl(fd, F_GETFL);
		if (r != expect)
			fail("fcntl(F_GETFL)", r);
		break;
	case OP_WRITE1:
		r = write(fd, buf, 1);
		if (r != 1)
			fail("write(1)", r);
		break;
	case OP_WRITE64K:
		r = write(fd, buf, sizeof(buf));
		if (r != (long)sizeof(buf))
			fail("write(65536)", r);
		break;
	case OP_CLOCK: {
		struct timespec ts;
		r = clock_gettime(CLOCK_MONOTONIC, &ts);
		if (r != 0)
			fail("clock_gettime", r);
		break;
	}
	case OP_MMAP64M: {
		volatile char *m = mmap(NULL, MMAP_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			fail("mmap(64 MiB)", -1);
		for (size_t off = 0; off < MMAP_BYTES; off += 4096)
			m[off] = 1;
		r = munmap((void *)m, MMAP_BYTES);
		if (r != 0)
			fail("munmap(64 MiB)", r);
		break;
	}
	}
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5) {
		fprintf(stderr,
			"usage: %s <getpid|getppid|fcntl|write1|write64k|clock|mmap64m> <iters> <out-file> [<max-seconds>]\n",
			prog);
		return 2;
	}
	enum op op;
	const char *name = argv[1];
	if (strcmp(name, "getpid") == 0)
		op = OP_GETPID;
	else if (strcmp(name, "getppid") == 0)
		op = OP_GETPPID;
	else if (strcmp(name, "fcntl") == 0)
		op = OP_FCNTL;
	else if (strcmp(name, "write1") == 0)
		op = OP_WRITE1;
	else if (strcmp(name, "write64k") == 0)
		op = OP_WRITE64K;
	else if (strcmp(name, "clock") == 0)
		op = OP_CLOCK;
	else if (strcmp(name, "mmap64m") == 0)
		op = OP_MMAP64M;
	else {
		fprintf(stderr, "%s: op must be getpid, getppid, fcntl, write1, write64k, clock or mmap64m, got '%s'\n",
			prog, name);
		return 2;
	}
	uint64_t n = parse_count(prog, "iters", argv[2]);
	uint64_t max_seconds = argc == 5 ? parse_count(prog, "max-seconds", argv[4]) : 0;
	uint64_t *s = alloc_samples(prog, n);
	memset(buf, 'x', sizeof(buf));

	int fd = open("/dev/null", O_WRONLY);
	if (fd < 0)
		fail("open(/dev/null)", fd);
	long expect = 0;
	if (op == OP_GETPID)
		expect = syscall(SYS_getpid);
	else if (op == OP_GETPPID)
		expect = syscall(SYS_getppid);
	else if (op == OP_FCNTL)
		expect = fcntl(fd, F_GETFL);
	if (expect < 0)
		fail("first call", expect);

	double hz = calibrate_tsc_hz();
	/* mmap64m: a few warm-up rounds only (each is 16384 page touches). */
	int warm = op == OP_MMAP64M ? 3 : 1000;
	for (int i = 0; i < warm; i++)
		one_call(op, fd, expect);
	uint64_t budget = max_seconds ? (uint64_t)(hz * (double)max_seconds) : UINT64_MAX;
	uint64_t start = tsc_begin(), done = 0;
	while (done < n) {
		uint64_t t0 = tsc_begin();
		one_call(op, fd, expect);
		uint64_t t1 = tsc_end();
		s[done++] = t1 - t0;
		if (((done & 1023) == 0 || op == OP_MMAP64M) && t1 - start > budget)
			break;
	}
	write_samples(prog, argv[3], s, done);
	printf("tsc_hz %.0f\nop %s\niters %llu\ndone\n", hz, name, (unsigned long long)done);
	return 0;
}
