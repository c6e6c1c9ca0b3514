#!/bin/sh
# Installs libmpishim built by cargo: install.sh <prefix> <cargo profile dir>
#   <prefix>/lib/libmpishim.so (beside libuti.so.1, which it loads at run
#   time from its own directory for the progress thread)
# Example: cargo build -p mpi-shim -p uti --release
#          uti/install.sh /usr/local target/release
#          mpi-shim/install.sh /usr/local target/release
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 <prefix> <cargo profile dir, e.g. target/release>" >&2
    exit 2
fi
lib=$2/libmpishim.so
if [ ! -f "$lib" ]; then
    echo "$0: $lib does not exist; build it first with: cargo build -p mpi-shim [--release]" >&2
    exit 1
fi
install -d "$1/lib"
install -m 0755 "$lib" "$1/lib/libmpishim.so"
echo "installed $1/lib/libmpishim.so"
