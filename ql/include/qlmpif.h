!     Quick launch for Fortran: include 'qlmpif.h', link with -lqlmpi.
!     call ql_client(ierr) ends a round; ierr is QL_CONTINUE (the next
!     round's arguments are what get_command_argument returns) or QL_EXIT.
!     Valid in fixed and free source form.
      integer QL_CONTINUE, QL_EXIT
      parameter (QL_CONTINUE = 1, QL_EXIT = 0)
