/*
 * Threads: the cost of creating a thread and of a futex hand-off between
 * two CPUs, each iteration timed on its own with the TSC.
 *
 * usage: threads <create|pingpong> <iters> <out-file> [<max-seconds>]
 *   create    pthread_create + pthread_join of a thread that returns at
 *             once; one sample per pair (after 10 untimed pairs).
 *   pingpong  two threads, pinned with pthread_setaffinity_np to the first
 *             two CPUs of the process's affinity mask (sched_getaffinity),
 *             pass a token through one futex word: the main thread stores
 *             an odd value and wakes (FUTEX_WAKE_PRIVATE), the partner,
 *             sleeping in FUTEX_WAIT_PRIVATE until the word changes, answers
 *             with the next even value and wakes the main thread back. One
 *             sample per round trip (after 20 untimed ones). Nobody spins:
 *             every wait is a futex wait, so each round trip is two sleeps
 *             and two cross-CPU wake-ups.
 * With <max-seconds>, the run stops early once that much time has passed
 * (at least 10 iterations are timed); "iters" then says how many were.
 * Every call's result is checked; a failure aborts the run.
 * stdout: tsc_hz, mode, iters, (pingpong) "cpus <a> <b>" as pinned and
 * "ran_on <a> <b>" from sched_getcpu (-1 when unknown), "done";
 * <out-file>: per-iteration TSC ticks.
 */
#define _GNU_SOURCE
#include "bench_common.h"
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *prog = "threads";

static void fail_errno(const char *what, int err)
{
	fprintf(stderr, "%s: %s failed: %s\n", prog, what, strerror(err));
	exit(1);
}

/* ---- create ---- */

static void *empty(void *arg)
{
	return arg;
}

static void create_join_once(void)
{
	pthread_t t;
	void *ret = NULL;
	int e = pthread_create(&t, NULL, empty, &ret);
	if (e != 0)
		fail_errno("pthread_create", e);
	e = pthread_join(t, &ret);
	if (e != 0)
		fail_errno("pthread_join", e);
	if (ret != &ret) {
		fprintf(stderr, "%s: the thread returned %p, expected %p\n", prog, ret, (void *)&ret);
		exit(1);
	}
}

/* ---- pingpong ---- */

static _Alignas(64) uint32_t word;
static _Alignas(64) uint32_t stop;
static int partner_cpu = -1, partner_ran_on = -1;

static void futex_wait(uint32_t *addr, uint32_t val)
{
	long r = syscall(SYS_futex, addr, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
	if (r == -1 && errno != EAGAIN && errno != EINTR)
		fail_errno("futex(FUTEX_WAIT_PRIVATE)", errno);
}

static void futex_wake(uint32_t *addr)
{
	long r = syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
	if (r == -1)
		fail_errno("futex(FUTEX_WAKE_PRIVATE)", errno);
}

/* Sleeps until *addr holds want (every other value is waited out). */
static void wait_for(uint32_t *addr, uint32_t want)
{
	uint32_t cur;
	while ((cur = __atomic_load_n(addr, __ATOMIC_ACQUIRE)) != want)
		futex_wait(addr, cur);
}

static void publish(uint32_t *addr, uint32_t val)
{
	__atomic_store_n(addr, val, __ATOMIC_RELEASE);
	futex_wake(addr);
}

static void pin_self(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	int e = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (e != 0)
		fail_errno("pthread_setaffinity_np", e);
}

static void *partner(void *arg)
{
	(void)arg;
	pin_self(partner_cpu);
	partner_ran_on = sched_getcpu();
	for (uint32_t v = 1;; v += 2) {
		wait_for(&word, v);
		if (__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
			return NULL;
		publish(&word, v + 1);
	}
}

/* The first two CPUs of the process's affinity mask. */
static void two_cpus(int *a, int *b)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		fail_errno("sched_getaffinity", errno);
	int found[2], n = 0;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			found[n++] = c;
	if (n < 2) {
		fprintf(stderr, "%s: pingpong needs two CPUs in the affinity mask, it has %d\n", prog,
			CPU_COUNT(&set));
		exit(1);
	}
	*a = found[0];
	*b = found[1];
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: %s <create|pingpong> <iters> <out-file> [<max-seconds>]\n", prog);
		return 2;
	}
	const char *mode = argv[1];
	int pingpong;
	if (strcmp(mode, "create") == 0)
		pingpong = 0;
	else if (strcmp(mode, "pingpong") == 0)
		pingpong = 1;
	else {
		fprintf(stderr, "%s: mode must be create or pingpong, got '%s'\n", prog, mode);
		return 2;
	}
	uint64_t n = parse_count(prog, "iters", argv[2]);
	uint64_t max_seconds = argc == 5 ? parse_count(prog, "max-seconds", argv[4]) : 0;
	uint64_t *s = alloc_samples(prog, n);
	double hz = calibrate_tsc_hz();
	uint64_t budget = max_seconds ? (uint64_t)(hz * (double)max_seconds) : UINT64_MAX;
	uint64_t done = 0, start;

	if (!pingpong) {
		for (int i = 0; i < 10; i++)
			create_join_once();
		start = tsc_begin();
		while (done < n) {
			uint64_t t0 = tsc_begin();
			create_join_once();
			uint64_t t1 = tsc_end();
			s[done++] = t1 - t0;
			if (done >= 10 && t1 - start > budget)
				break;
		}
		write_samples(prog, argv[3], s, done);
		printf("tsc_hz %.0f\nmode create\niters %llu\ndone\n", hz, (unsigned long long)done);
		return 0;
	}

	int cpu_a, cpu_b;
	two_cpus(&cpu_a, &cpu_b);
	partner_cpu = cpu_b;
	pin_self(cpu_a);
	int ran_on = sched_getcpu();
	pthread_t t;
	int e = pthread_create(&t, NULL, partner, NULL);
	if (e != 0)
		fail_errno("pthread_create", e);
	uint32_t v = 1;
	for (int i = 0; i < 20; i++, v += 2) {
		publish(&word, v);
		wait_for(&word, v + 1);
	}
	start = tsc_begin();
	while (done < n) {
		uint64_t t0 = tsc_begin();
		publish(&word, v);
		wait_for(&word, v + 1);
		uint64_t t1 = tsc_end();
		v += 2;
		s[done++] = t1 - t0;
		if (done >= 10 && t1 - start > budget)
			break;
	}
	/* The partner waits for v: let it see the stop flag and return. */
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	publish(&word, v);
	e = pthread_join(t, NULL);
	if (e != 0)
		fail_errno("pthread_join", e);
	write_samples(prog, argv[3], s, done);
	printf("tsc_hz %.0f\nmode pingpong\niters %llu\ncpus %d %d\nran_on %d %d\ndone\n", hz,
	       (unsigned long long)done, cpu_a, cpu_b, ran_on, partner_ran_on);
	return 0;
}
