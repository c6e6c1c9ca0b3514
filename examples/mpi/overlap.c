/*
 * overlap: communication/computation overlap of a large MPI_Isend/Irecv
 * exchange between two ranks (issue 18: mpi-shim's asynchronous progress).
 *
 * Each rank posts MPI_Irecv and MPI_Isend of <MiB> MiB to the other rank,
 * then computes without any MPI call, then waits. Without a progress
 * thread nothing moves while the ranks compute (the transfer needs the
 * library's progress engine on both sides); with mpi-shim's
 * (LD_PRELOAD=libmpishim.so MPISHIM_ASYNC_PROGRESS=1) the message arrives
 * during the computation.
 *
 *   overlap check <MiB> <limit-s> [init|init_thread]
 *     Computes until the last word of the receive buffer has arrived, at
 *     most <limit-s> seconds; then, if the shim's progress thread runs,
 *     until it has made two more polls (the poll that copied the last
 *     fragment has returned, and with it the request's completion), then
 *     calls MPI_Test once on the receive request, then MPI_Wait, and checks
 *     every word. One line per rank, in rank order:
 *       rank R: arrived_in_compute yes|no test_after_compute 1|0 data ok|bad
 *               provided P polls N cpus MASK
 *     (polls/cpus: mpishim_progress_polls/_cpus, -1 without the shim).
 *     init: MPI_Init (default); init_thread: MPI_Init_thread(FUNNELED).
 *
 *   overlap bench <MiB> <reps>
 *     Rank 0 prints the medians over <reps> of: the exchange alone
 *     (comm_ms), the computation alone (comp_ms), both overlapped
 *     (total_ms), and overlap = (comm + comp - total) / comm, the part of
 *     the communication hidden behind the computation (0 = none, 1 = all).
 *     The computation is sized to about twice the exchange, at least 0.25 s.
 *
 * Exit status 1 on a wrong result.
 * Build: mpicc.openmpi (or mpicc.mpich) -O2 -o overlap overlap.c
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <mpi.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAG 7

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Arithmetic only: no memory traffic, no system call, no MPI. */
static double work(long n)
{
	volatile double acc = 1.0;
	for (long i = 0; i < n; i++)
		acc = acc * 1.0000001 + 1e-9;
	return acc;
}

static uint64_t word(int rank, size_t i)
{
	return ((uint64_t)(rank + 1) << 48) ^ (i * 0x9e3779b97f4a7c15ull);
}

typedef unsigned long long (*counter_fn)(void);

static long long counter(const char *name)
{
	counter_fn f = (counter_fn)dlsym(RTLD_DEFAULT, name);
	return f ? (long long)f() : -1;
}

struct exchange {
	uint64_t *sbuf, *rbuf;
	size_t words;
	int peer;
	MPI_Request req[2];
};

static void post(struct exchange *x)
{
	MPI_Irecv(x->rbuf, (int)(x->words * 8), MPI_BYTE, x->peer, TAG, MPI_COMM_WORLD, &x->req[0]);
	MPI_Isend(x->sbuf, (int)(x->words * 8), MPI_BYTE, x->peer, TAG, MPI_COMM_WORLD, &x->req[1]);
}

static void wait_both(struct exchange *x)
{
	MPI_Status st[2];
	MPI_Waitall(2, x->req, st);
}

static int check(int rank, int argc, char **argv, struct exchange *x, int provided)
{
	double limit = atof(argv[3]);
	volatile uint64_t *last = &x->rbuf[x->words - 1];
	uint64_t want = word(x->peer, x->words - 1);
	int arrived = 0, done = 0, ok = 1;
	double t0;
	char line[256];
	(void)argc;

	MPI_Barrier(MPI_COMM_WORLD);
	post(x);
	t0 = now();
	while (now() - t0 < limit) {
		work(20000);
		if (*last == want) {
			arrived = 1;
			break;
		}
	}
	if (arrived && counter("mpishim_progress_polls") >= 0) {
		long long p0 = counter("mpishim_progress_polls");
		while (counter("mpishim_progress_polls") < p0 + 2 && now() - t0 < limit)
			work(1000);
	}
	MPI_Test(&x->req[0], &done, MPI_STATUS_IGNORE);
	wait_both(x);
	for (size_t i = 0; i < x->words; i++)
		if (x->rbuf[i] != word(x->peer, i)) {
			ok = 0;
			break;
		}
	snprintf(line, sizeof line,
		 "rank %d: arrived_in_compute %s test_after_compute %d data %s provided %d polls %lld cpus %lld\n",
		 rank, arrived ? "yes" : "no", done, ok ? "ok" : "bad", provided,
		 counter("mpishim_progress_polls"), counter("mpishim_progress_cpus"));
	/* Rank 0 prints both lines, in order. */
	if (rank == 0) {
		char other[256];
		fputs(line, stdout);
		MPI_Recv(other, sizeof other, MPI_CHAR, 1, TAG + 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		fputs(other, stdout);
		fflush(stdout);
	} else {
		MPI_Send(line, sizeof line, MPI_CHAR, 0, TAG + 1, MPI_COMM_WORLD);
	}
	return ok;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof *v, cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int bench(int rank, char **argv, struct exchange *x)
{
	int reps = atoi(argv[3]);
	double *comm, *comp, *total, t, goal;
	long n;

	if (reps < 1)
		reps = 1;
	comm = calloc(reps, sizeof *comm);
	comp = calloc(reps, sizeof *comp);
	total = calloc(reps, sizeof *total);
	/* Warm-up: the first exchange sets up the connection. */
	MPI_Barrier(MPI_COMM_WORLD);
	post(x);
	wait_both(x);
	for (int r = 0; r < reps; r++) {
		MPI_Barrier(MPI_COMM_WORLD);
		t = now();
		post(x);
		wait_both(x);
		comm[r] = now() - t;
	}
	/*
	 * Size the computation to about twice the exchange, and at least
	 * 0.25 s (ranks that share a CPU take turns in time slices of some
	 * milliseconds: a shorter computation would fit in one); rank 0
	 * decides.
	 */
	t = now();
	work(10000000);
	t = now() - t;
	goal = 2.0 * median(comm, reps);
	if (goal < 0.25)
		goal = 0.25;
	n = (long)(10000000.0 * goal / (t > 0 ? t : 1e-9));
	if (n < 1000)
		n = 1000;
	MPI_Bcast(&n, 1, MPI_LONG, 0, MPI_COMM_WORLD);
	for (int r = 0; r < reps; r++) {
		MPI_Barrier(MPI_COMM_WORLD);
		t = now();
		work(n);
		comp[r] = now() - t;
	}
	for (int r = 0; r < reps; r++) {
		MPI_Barrier(MPI_COMM_WORLD);
		t = now();
		post(x);
		work(n);
		wait_both(x);
		total[r] = now() - t;
	}
	for (size_t i = 0; i < x->words; i++)
		if (x->rbuf[i] != word(x->peer, i)) {
			printf("rank %d: corrupt message at word %zu\n", rank, i);
			return 0;
		}
	if (rank == 0) {
		double cm = median(comm, reps), cp = median(comp, reps), tt = median(total, reps);
		double ov = (cm + cp - tt) / cm;
		ov = ov < 0 ? 0 : ov > 1 ? 1 : ov;
		printf("reps %d bytes %zu comm_ms %.3f comp_ms %.3f total_ms %.3f overlap %.3f polls %lld cpus %lld\n",
		       reps, x->words * 8, cm * 1e3, cp * 1e3, tt * 1e3, ov,
		       counter("mpishim_progress_polls"), counter("mpishim_progress_cpus"));
		puts("done");
		fflush(stdout);
	}
	return 1;
}

int main(int argc, char **argv)
{
	int rank, size, provided = -1, ok;
	struct exchange x;

	if (argc < 4 || (strcmp(argv[1], "check") && strcmp(argv[1], "bench"))) {
		fprintf(stderr, "usage: %s check <MiB> <limit-s> [init|init_thread] | bench <MiB> <reps>\n", argv[0]);
		return 2;
	}
	if (argc > 4 && !strcmp(argv[4], "init_thread"))
		MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
	else
		MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (size != 2) {
		if (rank == 0)
			fprintf(stderr, "overlap: needs exactly 2 ranks, not %d\n", size);
		MPI_Finalize();
		return 2;
	}
	x.words = (size_t)atoi(argv[2]) << 17; /* MiB in 8-byte words */
	if (x.words == 0)
		x.words = 1;
	x.peer = 1 - rank;
	x.sbuf = malloc(x.words * 8);
	x.rbuf = calloc(x.words, 8);
	for (size_t i = 0; i < x.words; i++)
		x.sbuf[i] = word(rank, i);
	ok = !strcmp(argv[1], "check") ? check(rank, argc, argv, &x, provided) : bench(rank, argv, &x);
	MPI_Finalize();
	return ok ? 0 : 1;
}
