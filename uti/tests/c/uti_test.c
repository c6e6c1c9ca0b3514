/*
 * uti_test: creates utility threads with uti.h and reports where they run.
 * Driven by uti/tests/c_api.rs, which compiles it against the installed
 * header and library and compares the report with what the hints imply.
 *
 *   uti_test [-c CPU] [-n N] [-m NODES] [-A CPUS] [-w] [-v] HINT[,HINT...]
 *   uti_test --api
 *
 *   -c CPU    pin the calling thread to CPU before creating threads
 *   -n N      create N threads, all alive at once (default 1)
 *   -m NODES  NUMA nodes for NUMA_SET, e.g. "1" or "0,1"
 *   -A CPUS   pass a pthread_attr_t whose affinity is the CPU list CPUS
 *   -w        after reporting, print "ready" and keep the threads alive
 *             until a line (or EOF) arrives on stdin
 *   -v        uti_set_loglevel(UTI_LOGLEVEL_DEBUG)
 *   HINT      NONE, NUMA_SET, SAME_NUMA_DOMAIN, ... (the UTI_ATTR_* names)
 *
 * Report lines (stdout):
 *   caller cpu=<n> affinity=<list>
 *   create rc=<errno>
 *   thread <i> cpu=<n> affinity=<list> computed=<list|none> policy=<FIFO|OTHER|...>
 *   attr affinity=<list|unset> inherit=<INHERIT|EXPLICIT>   (with -A)
 * Exit status 0 unless the program itself failed (bad usage, a self-check).
 * --api runs self-checks of the API surface and prints "api ok".
 */

#define _GNU_SOURCE
#include <uti.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 64

struct report {
	int cpu;
	cpu_set_t affinity;
	int computed_rc;
	cpu_set_t computed;
	int policy;
};

static struct report reports[MAX_THREADS];
static pthread_barrier_t all_started, release;

static void die(const char *what)
{
	fprintf(stderr, "uti_test: %s\n", what);
	exit(2);
}

static void print_set(const char *name, const cpu_set_t *set)
{
	int cpu, first = 1;

	printf(" %s=", name);
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		int end = cpu;

		if (!CPU_ISSET(cpu, set))
			continue;
		while (end + 1 < CPU_SETSIZE && CPU_ISSET(end + 1, set))
			end++;
		printf("%s%d", first ? "" : ",", cpu);
		if (end > cpu)
			printf("-%d", end);
		first = 0;
		cpu = end;
	}
	if (first)
		printf("none");
}

static int parse_list(const char *text, cpu_set_t *set)
{
	char *copy = strdup(text), *save = NULL, *item;

	if (!copy)
		return -1;
	CPU_ZERO(set);
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		int lo, hi;
		char *end;

		lo = (int)strtol(item, &end, 10);
		hi = lo;
		if (*end == '-')
			hi = (int)strtol(end + 1, &end, 10);
		if (*end || lo < 0 || hi < lo || hi >= CPU_SETSIZE) {
			free(copy);
			return -1;
		}
		for (; lo <= hi; lo++)
			CPU_SET(lo, set);
	}
	free(copy);
	return 0;
}

static void *utility(void *arg)
{
	struct report *r = arg;
	struct sched_param param;

	r->cpu = sched_getcpu();
	if (pthread_getaffinity_np(pthread_self(), sizeof(r->affinity), &r->affinity))
		CPU_ZERO(&r->affinity);
	CPU_ZERO(&r->computed);
	r->computed_rc = uti_self_cpuset(sizeof(r->computed), &r->computed);
	if (pthread_getschedparam(pthread_self(), &r->policy, &param))
		r->policy = -1;
	pthread_barrier_wait(&all_started);
	pthread_barrier_wait(&release);
	return NULL;
}

static int set_hint(uti_attr_t *ua, const char *name, const char *nodes)
{
	static const struct {
		const char *name;
		int (*set)(uti_attr_t *);
	} setters[] = {
		{ "SAME_NUMA_DOMAIN", UTI_ATTR_SAME_NUMA_DOMAIN },
		{ "DIFFERENT_NUMA_DOMAIN", UTI_ATTR_DIFFERENT_NUMA_DOMAIN },
		{ "SAME_L1", UTI_ATTR_SAME_L1 },
		{ "SAME_L2", UTI_ATTR_SAME_L2 },
		{ "SAME_L3", UTI_ATTR_SAME_L3 },
		{ "DIFFERENT_L1", UTI_ATTR_DIFFERENT_L1 },
		{ "DIFFERENT_L2", UTI_ATTR_DIFFERENT_L2 },
		{ "DIFFERENT_L3", UTI_ATTR_DIFFERENT_L3 },
		{ "EXCLUSIVE_CPU", UTI_ATTR_EXCLUSIVE_CPU },
		{ "CPU_INTENSIVE", UTI_ATTR_CPU_INTENSIVE },
		{ "HIGH_PRIORITY", UTI_ATTR_HIGH_PRIORITY },
		{ "NON_COOPERATIVE", UTI_ATTR_NON_COOPERATIVE },
		{ "PREFER_LWK", UTI_ATTR_PREFER_LWK },
		{ "PREFER_FWK", UTI_ATTR_PREFER_FWK },
		{ "FABRIC_INTR_AFFINITY", UTI_ATTR_FABRIC_INTR_AFFINITY },
	};
	size_t i;

	if (!strcmp(name, "NONE"))
		return 0;
	if (!strcmp(name, "NUMA_SET")) {
		uint64_t mask[UTI_MAX_NUMA_DOMAINS / 64] = { 0 };
		cpu_set_t set;
		int n;

		if (!nodes || parse_list(nodes, &set))
			die("NUMA_SET needs -m NODES");
		for (n = 0; n < UTI_MAX_NUMA_DOMAINS; n++)
			if (CPU_ISSET(n, &set))
				mask[n / 64] |= 1ULL << (n % 64);
		return UTI_ATTR_NUMA_SET(ua, mask, UTI_MAX_NUMA_DOMAINS);
	}
	for (i = 0; i < sizeof(setters) / sizeof(setters[0]); i++)
		if (!strcmp(name, setters[i].name))
			return setters[i].set(ua);
	fprintf(stderr, "uti_test: unknown hint %s\n", name);
	exit(2);
}

static const char *policy_name(int p)
{
	switch (p) {
	case SCHED_OTHER: return "OTHER";
	case SCHED_FIFO: return "FIFO";
	case SCHED_RR: return "RR";
	case SCHED_BATCH: return "BATCH";
	case SCHED_IDLE: return "IDLE";
	default: return "UNKNOWN";
	}
}

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "uti_test: check failed: %s (line %d)\n", #cond, __LINE__); return 1; } } while (0)

static void *noop(void *arg)
{
	return arg;
}

static void *exits(void *arg)
{
	pthread_exit(arg);
	return NULL;
}

static void *sleeps(void *arg)
{
	(void)arg;
	for (;;)
		sleep(1); /* a cancellation point */
	return NULL;
}

/* Self-checks of the API surface that need no topology knowledge. */
static int api_checks(void)
{
	uti_attr_t ua;
	uint64_t mask[32] = { 0 };
	pthread_t t;
	int (*setters[])(uti_attr_t *) = {
		UTI_ATTR_SAME_NUMA_DOMAIN, UTI_ATTR_DIFFERENT_NUMA_DOMAIN,
		UTI_ATTR_SAME_L1, UTI_ATTR_SAME_L2, UTI_ATTR_SAME_L3,
		UTI_ATTR_DIFFERENT_L1, UTI_ATTR_DIFFERENT_L2, UTI_ATTR_DIFFERENT_L3,
		UTI_ATTR_EXCLUSIVE_CPU, UTI_ATTR_CPU_INTENSIVE, UTI_ATTR_HIGH_PRIORITY,
		UTI_ATTR_NON_COOPERATIVE, UTI_ATTR_PREFER_LWK, UTI_ATTR_PREFER_FWK,
		UTI_ATTR_FABRIC_INTR_AFFINITY,
	};
	size_t i;
	cpu_set_t set;

	CHECK(sizeof(uti_attr_t) == 136);
	CHECK(UTI_FLAG_NUMA_SET == 2 && UTI_FLAG_FABRIC_INTR_AFFINITY == 65536);
	CHECK(uti_attr_init(NULL) == EINVAL);
	CHECK(uti_attr_destroy(NULL) == EINVAL);
	memset(&ua, 0xff, sizeof(ua));
	CHECK(uti_attr_init(&ua) == 0);
	CHECK(ua.flags == 0 && ua.numa_set[0] == 0 && ua.numa_set[15] == 0);
	for (i = 0; i < sizeof(setters) / sizeof(setters[0]); i++) {
		CHECK(setters[i](NULL) == EINVAL);
		CHECK(setters[i](&ua) == 0);
		CHECK(ua.flags & (1ULL << (i + 2)));
	}
	CHECK(ua.flags == ((1ULL << 17) - 4));
	CHECK(uti_attr_destroy(&ua) == 0);

	/* NUMA_SET: mbind-style mask of maxnode bits. */
	uti_attr_init(&ua);
	mask[0] = 0x5;
	mask[1] = 0x1;
	CHECK(UTI_ATTR_NUMA_SET(NULL, mask, 128) == EINVAL);
	CHECK(UTI_ATTR_NUMA_SET(&ua, NULL, 128) == EINVAL);
	CHECK(UTI_ATTR_NUMA_SET(&ua, mask, 65) == 0);
	CHECK(ua.numa_set[0] == 0x5 && ua.numa_set[1] == 0x1 && (ua.flags & UTI_FLAG_NUMA_SET));
	CHECK(UTI_ATTR_NUMA_SET(&ua, mask, 3) == 0);
	CHECK(ua.numa_set[0] == 0x5 && ua.numa_set[1] == 0);
	mask[16] = 1; /* node 1024: cannot be named */
	CHECK(UTI_ATTR_NUMA_SET(&ua, mask, 2048) == EINVAL);

	/* Argument errors of uti_pthread_create. */
	uti_attr_init(&ua);
	CHECK(uti_pthread_create(&t, NULL, noop, NULL, NULL) == EINVAL);
	CHECK(uti_pthread_create(NULL, NULL, noop, NULL, &ua) == EINVAL);
	CHECK(uti_pthread_create(&t, NULL, NULL, NULL, &ua) == EINVAL);
	UTI_ATTR_SAME_NUMA_DOMAIN(&ua);
	UTI_ATTR_DIFFERENT_NUMA_DOMAIN(&ua);
	CHECK(uti_pthread_create(&t, NULL, noop, NULL, &ua) == EINVAL);
	uti_attr_init(&ua);
	UTI_ATTR_PREFER_LWK(&ua);
	UTI_ATTR_PREFER_FWK(&ua);
	CHECK(uti_pthread_create(&t, NULL, noop, NULL, &ua) == EINVAL);
	uti_attr_init(&ua);
	ua.flags |= 1ULL << 40;
	CHECK(uti_pthread_create(&t, NULL, noop, NULL, &ua) == EINVAL);

	/* A plain thread has no UTI placement. */
	CHECK(uti_self_cpuset(sizeof(set), &set) == ENOENT);
	CHECK(uti_self_cpuset(0, &set) == EINVAL);

	/* The log level is the library's variable. */
	uti_set_loglevel(UTI_LOGLEVEL_DEBUG);
	CHECK(uti_loglevel == UTI_LOGLEVEL_DEBUG);
	uti_set_loglevel(UTI_LOGLEVEL_WARN);

	/* A working create and join. */
	uti_attr_init(&ua);
	CHECK(uti_pthread_create(&t, NULL, noop, &ua, &ua) == 0);
	{
		void *ret = NULL;

		CHECK(pthread_join(t, &ret) == 0 && ret == &ua);
		/* pthread_exit and cancellation unwind through the library's
		 * thread entry. */
		UTI_ATTR_CPU_INTENSIVE(&ua);
		CHECK(uti_pthread_create(&t, NULL, exits, &ua, &ua) == 0);
		CHECK(pthread_join(t, &ret) == 0 && ret == &ua);
		CHECK(uti_pthread_create(&t, NULL, sleeps, NULL, &ua) == 0);
		CHECK(pthread_cancel(t) == 0);
		CHECK(pthread_join(t, &ret) == 0 && ret == PTHREAD_CANCELED);
	}
	printf("api ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	int opt, n = 1, caller = -1, wait_stdin = 0, i, rc;
	const char *nodes = NULL, *attr_cpus = NULL;
	char *hints, *save = NULL, *h;
	uti_attr_t ua;
	pthread_t threads[MAX_THREADS];
	pthread_attr_t pattr;
	cpu_set_t set;

	if (argc == 2 && !strcmp(argv[1], "--api"))
		return api_checks();

	while ((opt = getopt(argc, argv, "c:n:m:A:wv")) != -1) {
		switch (opt) {
		case 'c': caller = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'm': nodes = optarg; break;
		case 'A': attr_cpus = optarg; break;
		case 'w': wait_stdin = 1; break;
		case 'v': uti_set_loglevel(UTI_LOGLEVEL_DEBUG); break;
		default: die("bad option");
		}
	}
	if (optind != argc - 1 || n < 1 || n > MAX_THREADS)
		die("usage: uti_test [-c CPU] [-n N] [-m NODES] [-A CPUS] [-w] [-v] HINT[,HINT...]");

	if (caller >= 0) {
		CPU_ZERO(&set);
		CPU_SET(caller, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("cannot pin the caller");
	}
	if (sched_getaffinity(0, sizeof(set), &set))
		die("sched_getaffinity");
	printf("caller cpu=%d", sched_getcpu());
	print_set("affinity", &set);
	printf("\n");

	if (uti_attr_init(&ua))
		die("uti_attr_init");
	hints = strdup(argv[optind]);
	for (h = strtok_r(hints, ",", &save); h; h = strtok_r(NULL, ",", &save))
		if (set_hint(&ua, h, nodes))
			die("a UTI_ATTR_* setter failed");
	free(hints);

	if (attr_cpus) {
		if (pthread_attr_init(&pattr) || parse_list(attr_cpus, &set) ||
		    pthread_attr_setaffinity_np(&pattr, sizeof(set), &set))
			die("cannot set up the pthread_attr_t");
	}

	pthread_barrier_init(&all_started, NULL, (unsigned)n + 1);
	pthread_barrier_init(&release, NULL, (unsigned)n + 1);
	for (i = 0; i < n; i++) {
		rc = uti_pthread_create(&threads[i], attr_cpus ? &pattr : NULL, utility, &reports[i], &ua);
		if (rc) {
			printf("create rc=%d\n", rc);
			fflush(stdout);
			/* Threads already created are blocked; exiting ends them. */
			exit(0);
		}
	}
	printf("create rc=0\n");
	pthread_barrier_wait(&all_started);

	for (i = 0; i < n; i++) {
		printf("thread %d cpu=%d", i, reports[i].cpu);
		print_set("affinity", &reports[i].affinity);
		if (reports[i].computed_rc == 0)
			print_set("computed", &reports[i].computed);
		else
			printf(" computed=none");
		printf(" policy=%s\n", policy_name(reports[i].policy));
	}
	if (attr_cpus) {
		int inherit;

		if (pthread_attr_getaffinity_np(&pattr, sizeof(set), &set) ||
		    pthread_attr_getinheritsched(&pattr, &inherit))
			die("cannot read the pthread_attr_t back");
		printf("attr");
		print_set("affinity", &set);
		printf(" inherit=%s\n", inherit == PTHREAD_INHERIT_SCHED ? "INHERIT" : "EXPLICIT");
	}
	fflush(stdout);

	if (wait_stdin) {
		char line[16];

		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			line[0] = 0;
	}
	pthread_barrier_wait(&release);
	for (i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	uti_attr_destroy(&ua);
	return 0;
}
