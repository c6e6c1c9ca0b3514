/*
 * Test program for the quick-launch integration tests: each round prints
 * what it was given and does what its first argument asks.
 *   (any)        rank R/N args: ... | cwd ... | QL_PROBE=... | QL_SOCKET set/unset
 *   crash        rank 1 dies of SIGSEGV (no core file)
 *   exit3        rank 0 exits with status 3 without ql_client
 *   stdin        rank 0 echoes one line of its stdin
 *   stderr       each rank writes a line to stderr
 *   sleep MS     each rank sleeps MS milliseconds
 *   finalize-msg after QL_EXIT, rank 0 prints "bye" before MPI_Finalize
 */
#include <mpi.h>
#include <qlmpilib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int rank, nprocs, i, one = 1, sum;
	char cwd[4096], line[256], args[1024];
	const char *probe, *cmd;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
	for (;;) {
		cmd = argc > 1 ? argv[1] : "";
		probe = getenv("QL_PROBE");
		/* One printf per line: MPICH makes stdout unbuffered, and
		 * lines of two ranks must not interleave. */
		args[0] = '\0';
		for (i = 1; i < argc; i++) {
			strncat(args, " ", sizeof args - strlen(args) - 1);
			strncat(args, argv[i], sizeof args - strlen(args) - 1);
		}
		printf("rank %d/%d args:%s | cwd %s | QL_PROBE=%s | QL_SOCKET %s\n", rank,
		       nprocs, args, getcwd(cwd, sizeof cwd) ? cwd : "?",
		       probe ? probe : "(unset)", getenv("QL_SOCKET") ? "set" : "unset");
		if (!strcmp(cmd, "crash") && rank == 1) {
			struct rlimit no_core = { 0, 0 };
			fflush(stdout);
			setrlimit(RLIMIT_CORE, &no_core);
			raise(SIGSEGV);
		}
		if (!strcmp(cmd, "exit3") && rank == 0) {
			fflush(stdout);
			exit(3);
		}
		if (!strcmp(cmd, "stdin") && rank == 0) {
			if (fgets(line, sizeof line, stdin))
				printf("stdin: %s", line);
			else
				printf("stdin: EOF\n");
		}
		if (!strcmp(cmd, "stderr"))
			fprintf(stderr, "stderr of rank %d\n", rank);
		if (!strcmp(cmd, "sleep") && argc > 2) {
			long ms = atol(argv[2]);
			struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
		/* MPI still works in every round. */
		MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
		if (sum != nprocs) {
			printf("rank %d: allreduce gave %d\n", rank, sum);
			return 1;
		}
		if (ql_client(&argc, &argv) != QL_CONTINUE)
			break;
	}
	if (argc > 1 && !strcmp(argv[1], "finalize-msg") && rank == 0)
		printf("bye from rank 0\n");
	MPI_Finalize();
	return 0;
}
