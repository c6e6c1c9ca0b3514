/*
 * A quick-launch program for the multi-node tests: MPI_Init once, then
 * rounds; each round prints, from every rank, the round's argument, the
 * rank, the node it runs on (SLURMD_NODENAME) and an MPI_Allreduce sum,
 * and waits in ql_client() for the next round or the end.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <qlmpilib.h>

int main(int argc, char **argv)
{
    int rank, size;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *node = getenv("SLURMD_NODENAME");
    do {
        long mine = rank + 1, sum = 0;
        MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
        printf("round %s: rank %d of %d on %s: sum %ld\n", argc > 1 ? argv[1] : "-",
               rank, size, node ? node : "?", sum);
        fflush(stdout);
    } while (ql_client(&argc, &argv) == QL_CONTINUE);
    MPI_Finalize();
    return 0;
}
