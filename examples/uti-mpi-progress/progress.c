/*
 * uti-mpi-progress: an MPI program whose asynchronous progress thread is
 * placed with UTI.
 *
 * Each rank's main thread is the compute thread: it posts a large
 * non-blocking ring exchange (MPI_Isend to the next rank, MPI_Irecv from
 * the previous one), computes, and only then looks at the result. A
 * progress thread created with uti_pthread_create drives the transfer
 * meanwhile with MPI_Testall (MPI_THREAD_MULTIPLE), on a CPU of its own in
 * the compute thread's NUMA domain:
 *
 *     UTI_ATTR_SAME_NUMA_DOMAIN(&ua);   near the compute thread's memory
 *     UTI_ATTR_EXCLUSIVE_CPU(&ua);      the node's least-used such CPU
 *
 * Ranks of a node share UTI's node-wide usage count, so their progress
 * threads take different CPUs. The compute thread binds itself to the
 * local_rank-th CPU it may use, so the example behaves the same whatever
 * binding the launcher applies (or none, e.g. with --oversubscribe).
 *
 * Output, one line per rank (rank 0 prints all, in rank order):
 *   rank R compute_cpu=C progress_cpu=P progress_affinity=LIST
 *       progress_computed=LIST tests=N bytes=B ok
 *
 * Build: mpicc -o progress progress.c -luti -pthread
 * Run:   mpiexec -n 2 ./progress [message MiB, default 8]
 */

#define _GNU_SOURCE
#include <mpi.h>
#include <uti.h>

#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TAG 17
#define LINE 512

struct progress {
	MPI_Request reqs[2];
	atomic_int pending;	/* main -> progress: reqs are posted */
	atomic_int done;	/* progress -> main: reqs completed */
	atomic_int stop;	/* main -> progress: exit */
	long tests;		/* MPI_Testall calls made */
	int cpu;		/* where the progress thread ran */
	cpu_set_t affinity;
	cpu_set_t computed;
	int computed_rc;
};

static void fail(const char *what)
{
	fprintf(stderr, "progress: %s\n", what);
	MPI_Abort(MPI_COMM_WORLD, 1);
}

static void format_set(char *buf, size_t len, const cpu_set_t *set)
{
	int cpu, first = 1;
	size_t used = 0;

	buf[0] = 0;
	for (cpu = 0; cpu < CPU_SETSIZE && used + 16 < len; cpu++) {
		int end = cpu;

		if (!CPU_ISSET(cpu, set))
			continue;
		while (end + 1 < CPU_SETSIZE && CPU_ISSET(end + 1, set))
			end++;
		used += (size_t)snprintf(buf + used, len - used, "%s%d", first ? "" : ",", cpu);
		if (end > cpu)
			used += (size_t)snprintf(buf + used, len - used, "-%d", end);
		first = 0;
		cpu = end;
	}
	if (first)
		snprintf(buf, len, "none");
}

static void *progress_main(void *arg)
{
	struct progress *p = arg;
	const struct timespec nap = { 0, 50 * 1000 }; /* 50 us between polls */

	p->cpu = sched_getcpu();
	pthread_getaffinity_np(pthread_self(), sizeof(p->affinity), &p->affinity);
	p->computed_rc = uti_self_cpuset(sizeof(p->computed), &p->computed);

	while (!atomic_load(&p->stop)) {
		if (atomic_load(&p->pending)) {
			int flag = 0;

			MPI_Testall(2, p->reqs, &flag, MPI_STATUSES_IGNORE);
			p->tests++;
			if (flag) {
				atomic_store(&p->pending, 0);
				atomic_store(&p->done, 1);
			}
		}
		/* Progress threads usually spin; napping keeps an oversubscribed
		 * node usable. */
		nanosleep(&nap, NULL);
	}
	return NULL;
}

/* Work for the compute thread while the transfer proceeds. */
static double compute(long n)
{
	double x = 0.0;
	long i;

	for (i = 1; i <= n; i++)
		x += 1.0 / ((double)i * (double)i);
	return x;
}

static int local_rank(void)
{
	MPI_Comm node;
	int r;

	MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
	MPI_Comm_rank(node, &r);
	MPI_Comm_free(&node);
	return r;
}

/* Binds the calling (compute) thread to the index-th CPU it may use. */
static int bind_compute_thread(int index)
{
	cpu_set_t allowed, one;
	int cpu, n = 0, count;

	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		fail("sched_getaffinity");
	count = CPU_COUNT(&allowed);
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed))
			continue;
		if (n++ == index % count) {
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			if (sched_setaffinity(0, sizeof(one), &one))
				fail("sched_setaffinity");
			return cpu;
		}
	}
	fail("no CPU to bind to");
	return -1;
}

int main(int argc, char **argv)
{
	int provided, rank, size, rc, compute_cpu, ok = 1;
	size_t bytes, i;
	unsigned char *sendbuf, *recvbuf;
	struct progress p;
	uti_attr_t ua;
	pthread_t thread;
	double sum;
	char line[LINE], aff[128], comp[128];

	MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
	if (provided < MPI_THREAD_MULTIPLE)
		fail("the MPI library does not provide MPI_THREAD_MULTIPLE");
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	bytes = (size_t)(argc > 1 ? atoi(argv[1]) : 8) << 20;

	compute_cpu = bind_compute_thread(local_rank());

	memset(&p, 0, sizeof(p));
	if (uti_attr_init(&ua) || UTI_ATTR_SAME_NUMA_DOMAIN(&ua) || UTI_ATTR_EXCLUSIVE_CPU(&ua))
		fail("setting UTI hints");
	rc = uti_pthread_create(&thread, NULL, progress_main, &p, &ua);
	if (rc) {
		fprintf(stderr, "progress: uti_pthread_create: %s\n", strerror(rc));
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	uti_attr_destroy(&ua);

	sendbuf = malloc(bytes);
	recvbuf = malloc(bytes);
	if (!sendbuf || !recvbuf)
		fail("out of memory");
	for (i = 0; i < bytes; i++)
		sendbuf[i] = (unsigned char)(rank + i);

	MPI_Irecv(recvbuf, (int)bytes, MPI_BYTE, (rank + size - 1) % size, TAG, MPI_COMM_WORLD, &p.reqs[0]);
	MPI_Isend(sendbuf, (int)bytes, MPI_BYTE, (rank + 1) % size, TAG, MPI_COMM_WORLD, &p.reqs[1]);
	atomic_store(&p.pending, 1);

	sum = compute(20 * 1000 * 1000);

	while (!atomic_load(&p.done))
		sched_yield();
	atomic_store(&p.stop, 1);
	pthread_join(thread, NULL);

	for (i = 0; i < bytes; i++)
		if (recvbuf[i] != (unsigned char)((rank + size - 1) % size + i)) {
			ok = 0;
			break;
		}

	format_set(aff, sizeof(aff), &p.affinity);
	if (p.computed_rc == 0)
		format_set(comp, sizeof(comp), &p.computed);
	else
		snprintf(comp, sizeof(comp), "none");
	snprintf(line, sizeof(line),
		 "rank %d compute_cpu=%d progress_cpu=%d progress_affinity=%s progress_computed=%s tests=%ld bytes=%zu %s (sum %.6f)",
		 rank, compute_cpu, p.cpu, aff, comp, p.tests, bytes, ok ? "ok" : "CORRUPT", sum);

	if (rank == 0) {
		char *all = malloc((size_t)size * LINE);
		int r;

		MPI_Gather(line, LINE, MPI_CHAR, all, LINE, MPI_CHAR, 0, MPI_COMM_WORLD);
		for (r = 0; r < size; r++)
			printf("%s\n", all + (size_t)r * LINE);
		free(all);
	} else {
		MPI_Gather(line, LINE, MPI_CHAR, NULL, 0, MPI_CHAR, 0, MPI_COMM_WORLD);
	}
	free(sendbuf);
	free(recvbuf);
	MPI_Finalize();
	return ok ? 0 : 1;
}
