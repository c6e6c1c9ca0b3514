#!/usr/bin/env bash
# Installs quick launch from a built cargo profile directory:
#   <prefix>/bin      ql_mpiexec_start ql_mpiexec_finalize ql_server
#   <prefix>/lib      libqlmpi.so, and libqlfort.so (the same library: its
#                     Fortran binding; the guide links -lqlmpi -lqlfort)
#   <prefix>/include  qlmpilib.h (C), qlmpif.h (Fortran)
# ql_server goes next to ql_mpiexec_start, where ql_mpiexec_start looks first.
# Usage: ql/install.sh <prefix> <cargo profile dir, e.g. target/release>
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 <prefix> <cargo profile dir>" >&2
    exit 2
fi
prefix=$1
profile=$2
here=$(cd "$(dirname "$0")" && pwd)
for f in ql_mpiexec_start ql_mpiexec_finalize ql_server libqlmpi.so; do
    if [ ! -f "$profile/$f" ]; then
        echo "$0: $profile/$f is missing; build first (cargo build --release -p ql)" >&2
        exit 1
    fi
done
install -d "$prefix/bin" "$prefix/lib" "$prefix/include"
install -m 0755 "$profile/ql_mpiexec_start" "$profile/ql_mpiexec_finalize" "$profile/ql_server" "$prefix/bin/"
install -m 0755 "$profile/libqlmpi.so" "$prefix/lib/"
ln -sfn libqlmpi.so "$prefix/lib/libqlfort.so"
install -m 0644 "$here/include/qlmpilib.h" "$here/include/qlmpif.h" "$prefix/include/"
