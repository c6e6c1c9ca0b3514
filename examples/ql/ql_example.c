/*
 * The guide's quick-launch program ("Quick Process Launch", second step),
 * in C: MPI_Init once, then rounds; each round takes its input from the
 * command line and the environment, computes (an MPI_Allreduce), prints,
 * and waits in ql_client() for the next round or the end.
 *
 * Build: mpicc ql_example.c -I<prefix>/include -L<prefix>/lib -lqlmpi \
 *        -Wl,-rpath,<prefix>/lib -o p1.out
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <qlmpilib.h>

int main(int argc, char **argv)
{
	int rank, nprocs;
	long local, total;
	const char *arg, *tag;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
	/* Prepare data exchange with preceding / following MPI programs:
	 * nothing to prepare in this example. */
loop:
	/* Initialize data using command-line arguments and environment variables */
	arg = argc > 1 ? argv[1] : "(none)";
	tag = getenv("QL_EXAMPLE_TAG");
	/* Perform main calculation */
	local = rank + 1;
	MPI_Allreduce(&local, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
	/* Output data */
	printf("rank %d/%d arg %s sum %ld%s%s\n", rank, nprocs, arg, total,
	       tag ? " tag " : "", tag ? tag : "");
	/* ql_client() waits for the command of ql_mpiexec_{start,finalize} */
	if (ql_client(&argc, &argv) == QL_CONTINUE)
		goto loop;
	MPI_Finalize();
	return 0;
}
