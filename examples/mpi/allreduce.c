/*
 * allreduce: every rank contributes rank+1; every rank checks the sum
 * n(n+1)/2 and prints one line with its rank, the node it ran on
 * (SLURMD_NODENAME, else the host name) and the sum. Rank 0 also checks a
 * point-to-point ring. Exit status 1 on a wrong result.
 * Build: mpicc.openmpi (or mpicc.mpich) -O2 -o allreduce allreduce.c
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank, size, ok = 1;
    char host[256];

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *node = getenv("SLURMD_NODENAME");
    if (!node) {
        gethostname(host, sizeof host);
        host[sizeof host - 1] = 0;
        node = host;
    }

    long mine = rank + 1, sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    long want = (long)size * (size + 1) / 2;
    if (sum != want)
        ok = 0;

    /* A ring: each rank sends its rank to the next one. */
    int from = -1, next = (rank + 1) % size, prev = (rank + size - 1) % size;
    MPI_Sendrecv(&rank, 1, MPI_INT, next, 7, &from, 1, MPI_INT, prev, 7,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (from != prev)
        ok = 0;

    printf("rank %d of %d on %s: sum %ld (expected %ld), ring from %d: %s\n",
           rank, size, node, sum, want, from, ok ? "ok" : "WRONG");
    fflush(stdout);
    MPI_Finalize();
    return ok ? 0 : 1;
}
