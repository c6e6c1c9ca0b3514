#!/bin/sh
# Install the IHK host commands as McKernel lays them out.
#
#   ihk/install.sh <prefix> <cargo target profile dir>
#   e.g. ihk/install.sh /opt/mckernel target/release
#
# <prefix>/sbin:            ihkd ihkconfig ihkosctl ihkmond mcreboot
#                           mcstop+release, and the names users type:
#                           mcreboot.sh, mcstop+release.sh, mcstop-release
# <prefix>/lib:             libihk.so (the IHK C API)
# <prefix>/include:         ihklib.h
# <prefix>/lib/mckernel:    mckernel.img (the LWK image of the same build)
#
# Build first: cargo build --release -p ihk -p libihk
#
# mcreboot finds ihkd next to itself and the image in
# <prefix>/lib/mckernel/, so the tree works wherever <prefix> is.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 <prefix> <cargo target profile dir, e.g. target/release>" >&2
	exit 2
fi
prefix=$1
from=$2

here=$(cd "$(dirname "$0")" && pwd)
for f in ihkd ihkconfig ihkosctl ihkmond mcreboot mcstop-release mckernel.img libihk.so; do
	if [ ! -f "$from/$f" ]; then
		echo "error: $from/$f is missing; build first (cargo build --release -p ihk -p libihk)" >&2
		exit 1
	fi
done

install -d -m 0755 "$prefix/sbin" "$prefix/bin" "$prefix/lib/mckernel" "$prefix/include"
for f in ihkd ihkconfig ihkosctl ihkmond mcreboot; do
	install -m 0755 "$from/$f" "$prefix/sbin/$f"
done
install -m 0755 "$from/mcstop-release" "$prefix/sbin/mcstop+release"
ln -sf mcreboot "$prefix/sbin/mcreboot.sh"
ln -sf mcstop+release "$prefix/sbin/mcstop+release.sh"
ln -sf mcstop+release "$prefix/sbin/mcstop-release"
install -m 0644 "$from/mckernel.img" "$prefix/lib/mckernel/mckernel.img"
install -m 0755 "$from/libihk.so" "$prefix/lib/libihk.so"
install -m 0644 "$here/capi/include/ihklib.h" "$prefix/include/ihklib.h"
echo "installed the IHK commands in $prefix/sbin, libihk.so in $prefix/lib, ihklib.h in $prefix/include and the LWK image in $prefix/lib/mckernel"
