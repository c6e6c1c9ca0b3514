/*
 * The LWK's vDSO as glibc uses it (mcexec/tests/vdso.rs), built dynamic
 * and static: AT_SYSINFO_EHDR names an ELF image that an offloaded write
 * can read (mcexec's mirror has it); <n> rounds of clock_gettime on every
 * clock the vDSO answers never go backwards; gettimeofday and time agree
 * with CLOCK_REALTIME; CPU-time clocks and getcpu still answer (through the
 * kernel); a fork child and a thread read the clock too. Prints
 * "realtime_ns <v>" (read last) and "ok" at the end; exits 1 on a failure.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FAIL(...) do { printf("FAIL " __VA_ARGS__); printf("\n"); exit(1); } while (0)

static const clockid_t clocks[] = { CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW,
	CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME };
#define NCLOCKS (sizeof clocks / sizeof clocks[0])

static int64_t ns_of(clockid_t c)
{
	struct timespec ts;
	if (clock_gettime(c, &ts) != 0)
		FAIL("clock_gettime(%d)", (int)c);
	if (ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000)
		FAIL("clock %d: tv_nsec %ld", (int)c, ts.tv_nsec);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void rounds(long n)
{
	int64_t last[NCLOCKS] = { 0 };
	for (long i = 0; i < n; i++)
		for (unsigned k = 0; k < NCLOCKS; k++) {
			int64_t v = ns_of(clocks[k]);
			if (v < last[k])
				FAIL("clock %d went back: %ld after %ld", (int)clocks[k], (long)v, (long)last[k]);
			last[k] = v;
		}
	/* MONOTONIC <= BOOTTIME, both well below REALTIME. */
	int64_t mono = ns_of(CLOCK_MONOTONIC), boot = ns_of(CLOCK_BOOTTIME);
	if (mono > boot)
		FAIL("MONOTONIC %ld after BOOTTIME %ld", (long)mono, (long)boot);
}

static void *thread_main(void *arg)
{
	rounds((long)arg);
	return NULL;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	unsigned long ehdr = getauxval(AT_SYSINFO_EHDR);
	if (!ehdr)
		FAIL("no AT_SYSINFO_EHDR");
	if (memcmp((void *)ehdr, "\177ELF", 4) != 0)
		FAIL("AT_SYSINFO_EHDR %#lx is not an ELF header", ehdr);
	/* An offloaded call reads the vDSO page: the proxy's mirror has it. */
	FILE *null = fopen("/dev/null", "w");
	if (!null || write(fileno(null), (void *)ehdr, 64) != 64)
		FAIL("offloaded write from the vDSO page");
	printf("vdso %#lx\n", ehdr);

	rounds(n);

	struct timeval tv;
	int64_t before = ns_of(CLOCK_REALTIME);
	if (gettimeofday(&tv, NULL) != 0)
		FAIL("gettimeofday");
	time_t t = time(NULL);
	int64_t after = ns_of(CLOCK_REALTIME);
	int64_t tv_ns = (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
	if (tv_ns < before - 1000 || tv_ns > after)
		FAIL("gettimeofday %ld outside [%ld, %ld]", (long)tv_ns, (long)before, (long)after);
	if (t < before / 1000000000 || t > after / 1000000000)
		FAIL("time %ld outside [%ld, %ld] s", (long)t, (long)(before / 1000000000), (long)(after / 1000000000));
	struct timespec res;
	if (clock_getres(CLOCK_MONOTONIC, &res) != 0 || res.tv_sec != 0 || res.tv_nsec <= 0)
		FAIL("clock_getres");
	/* Through the kernel. */
	if (ns_of(CLOCK_PROCESS_CPUTIME_ID) <= 0 || ns_of(CLOCK_THREAD_CPUTIME_ID) <= 0)
		FAIL("CPU-time clocks");
	if (sched_getcpu() != 0)
		FAIL("sched_getcpu %d on a 1-CPU LWK", sched_getcpu());

	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork");
	if (pid == 0) {
		rounds(n / 10 + 1);
		_exit(getauxval(AT_SYSINFO_EHDR) == ehdr ? 0 : 3);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("fork child: status %#x", st);
	pthread_t th;
	if (pthread_create(&th, NULL, thread_main, (void *)(n / 10 + 1)) != 0 || pthread_join(th, NULL) != 0)
		FAIL("thread");
	printf("realtime_ns %ld\n", (long)ns_of(CLOCK_REALTIME));
	printf("ok\n");
	return 0;
}
