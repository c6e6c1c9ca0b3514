#!/bin/bash
# The guide's quick-launch job script ("Quick Process Launch", first step),
# shortened to 2 processes per program, 3 iterations and one host.
#
# p1.out stands for the ensemble simulation (two of them run in parallel,
# as the guide's ten do), p2.out for the data assimilation; both are
# ql_example.c or ql_example.f90 built with -lqlmpi. Each round passes a new
# argument (a1_<i>, a2_<i>), which the programs print.
#
# Run it in a directory holding p1.out and p2.out, with ql_mpiexec_start and
# ql_mpiexec_finalize on PATH. QL_MPIEXEC selects mpiexec (default
# `mpiexec`); the host files list1_1, list1_2, list2 are written for
# localhost in that mpiexec's format unless they exist.
#
# One change from the guide: the final loop uses $j (the guide's
# list1_$i would finalize one job ten times).
set -u

mpiexec_cmd=${QL_MPIEXEC:-mpiexec}
if $mpiexec_cmd --version 2>&1 | grep -qi -e "open mpi" -e openrte; then
   hostline="localhost slots=2"
else
   hostline="localhost:2"
fi
for f in list1_1 list1_2 list2; do
   [ -e "$f" ] || echo "$hostline" > "$f"
done

status=0
for i in {1..3}; do
   # Two ensemble simulations in parallel
   for j in {1..2}; do
      ql_mpiexec_start -n 2 -machinefile ./list1_$j p1.out a1_$i & pids[$j]=$!
   done

   # Wait until the ensemble simulation programs finish
   for j in {1..2}; do wait ${pids[$j]} || status=1; done

   # One data assimilation program
   ql_mpiexec_start -n 2 -machinefile ./list2 p2.out a2_$i || status=1
done

# p1.out and p2.out don't exit but are waiting for the next calculation. So tell them to exit
for j in {1..2}; do
   ql_mpiexec_finalize -machinefile ./list1_$j p1.out a1 || status=1
done

ql_mpiexec_finalize -machinefile ./list2 p2.out a2 || status=1
exit $status
