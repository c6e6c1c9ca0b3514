! The guide's quick-launch program ("Quick Process Launch", second step),
! in Fortran: MPI_Init once, then rounds; each round reads its argument with
! get_command_argument, computes (an MPI_Allreduce), prints, and waits in
! ql_client for the next round or the end.
!
! Build: mpif90 ql_example.f90 -I<prefix>/include -L<prefix>/lib -lqlmpi \
!        -Wl,-rpath,<prefix>/lib -o p1.out
program ql_example
  use mpi
  implicit none
  include 'qlmpif.h'
  integer :: ierr, rank, nprocs, local, total
  character(len=256) :: arg

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nprocs, ierr)
  do
     ! Initialize data using command-line arguments
     arg = '(none)'
     if (command_argument_count() >= 1) call get_command_argument(1, arg)
     ! Perform main calculation
     local = rank + 1
     call MPI_Allreduce(local, total, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
     write (*, '(a,i0,a,i0,a,a,a,i0)') 'rank ', rank, '/', nprocs, ' arg ', trim(arg), ' sum ', total
     ! ql_client waits for the command of ql_mpiexec_{start,finalize}
     call ql_client(ierr)
     if (ierr /= QL_CONTINUE) exit
  end do
  call MPI_Finalize(ierr)
end program ql_example
