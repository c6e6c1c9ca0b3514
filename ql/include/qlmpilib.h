/*
 * Quick launch (mckernel-guide.txt, "Quick Process Launch"): link with
 * -lqlmpi (libqlmpi.so) before the MPI libraries (mpicc puts them last).
 *
 * Call ql_client() at the end of each round. It returns QL_CONTINUE with
 * *argc / *argv set to the next round's arguments (the environment and the
 * working directory are the next caller's as well), or QL_EXIT when the job
 * is finalized (ql_mpiexec_finalize) -- and always when the program was not
 * started by ql_mpiexec_start. argc and argv may be NULL. The argv of the
 * previous round stays valid until the next call returns.
 */
#ifndef QLMPILIB_H
#define QLMPILIB_H

#define QL_CONTINUE 1
#define QL_EXIT 0

#ifdef __cplusplus
extern "C" {
#endif

int ql_client(int *argc, char ***argv);

#ifdef __cplusplus
}
#endif

#endif /* QLMPILIB_H */
