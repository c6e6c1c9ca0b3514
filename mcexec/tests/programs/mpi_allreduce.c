/* Two or more ranks: an allreduce of rank+1 and a 64 KiB message from rank
 * 0 to rank 1; each rank prints its sum, the message check and its CPU.
 * With the argument "crash", rank 1 dies of SIGSEGV after the exchange
 * while the others wait in a barrier. */
#define _GNU_SOURCE
#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long v = rank + 1, sum = 0;
    MPI_Allreduce(&v, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    static unsigned char buf[1 << 16];
    int ok = 1;
    if (rank == 0) {
        for (int i = 0; i < (int)sizeof buf; i++) buf[i] = (unsigned char)(i * 7);
        if (size > 1) MPI_Send(buf, sizeof buf, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
    } else if (rank == 1) {
        MPI_Recv(buf, sizeof buf, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (int i = 0; i < (int)sizeof buf; i++) ok &= buf[i] == (unsigned char)(i * 7);
    }
    printf("rank %d of %d: sum %ld message %s cpu %d\n", rank, size, sum, ok ? "ok" : "BAD", sched_getcpu());
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "crash") == 0) {
        if (rank == 1)
            *(volatile int *)8 = 1;
        MPI_Barrier(MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return 0;
}
