#!/usr/bin/env bash
# Builds the workspace in release mode and installs every component into a
# prefix laid out as McKernel's install tree:
#   <prefix>/sbin   mcreboot(.sh) mcstop+release(.sh) ihkconfig ihkosctl ihkd ihkmond
#   <prefix>/bin    mcexec ql_mpiexec_start ql_mpiexec_finalize ...
#   <prefix>/lib    libihk.so libuti.so libqlmpi.so, mckernel/mckernel.img
#   <prefix>/include ihklib.h uti.h qlmpilib.h
# Usage: scripts/install.sh [<prefix>]   (default: ./target/install)
# MCK_INSTALL_PROFILE=debug installs the debug build instead of release.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
prefix=${1:-$root/target/install}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
profile=${MCK_INSTALL_PROFILE:-release}
case "$profile" in
    release) cargo build --workspace --release ;;
    debug) cargo build --workspace ;;
    *) echo "install.sh: MCK_INSTALL_PROFILE must be debug or release, not '$profile'" >&2; exit 2 ;;
esac
profile_dir=${CARGO_TARGET_DIR:-$root/target}/$profile
for component in ihk mcexec uti ql spank-plugin mpi-shim; do
    if [ -x "$component/install.sh" ]; then
        "$component/install.sh" "$prefix" "$profile_dir"
    fi
done
echo "installed into $prefix"
