#!/bin/sh
# Installs libuti built by cargo: install.sh <prefix> <cargo profile dir>
#   <prefix>/lib/libuti.so.1.0.0 (+ libuti.so.1, libuti.so links)
#   <prefix>/include/uti.h
# Example: cargo build -p uti --release && uti/install.sh /usr/local target/release
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 <prefix> <cargo profile dir, e.g. target/release>" >&2
    exit 2
fi
prefix=$1
profile_dir=$2
here=$(cd "$(dirname "$0")" && pwd)
lib=$profile_dir/libuti.so
header=$here/include/uti.h

if [ ! -f "$lib" ]; then
    echo "$0: $lib does not exist; build it first with: cargo build -p uti [--release]" >&2
    exit 1
fi
if [ ! -f "$header" ]; then
    echo "$0: header $header is missing" >&2
    exit 1
fi

install -d "$prefix/lib" "$prefix/include"
install -m 0755 "$lib" "$prefix/lib/libuti.so.1.0.0"
ln -sfn libuti.so.1.0.0 "$prefix/lib/libuti.so.1"
ln -sfn libuti.so.1 "$prefix/lib/libuti.so"
install -m 0644 "$header" "$prefix/include/uti.h"
echo "installed $prefix/lib/libuti.so.1.0.0 and $prefix/include/uti.h"
