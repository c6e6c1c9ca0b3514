#!/bin/sh
# Install mcexec as McKernel lays it out.
#
#   mcexec/install.sh <prefix> <cargo target profile dir>
#   e.g. mcexec/install.sh /opt/mckernel target/release
#
# <prefix>/bin: mcexec
#
# Build first: cargo build --release -p mcexec
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 <prefix> <cargo target profile dir, e.g. target/release>" >&2
	exit 2
fi
prefix=$1
from=$2
if [ ! -f "$from/mcexec" ]; then
	echo "error: $from/mcexec is missing; build first (cargo build --release -p mcexec)" >&2
	exit 1
fi
install -d -m 0755 "$prefix/bin"
install -m 0755 "$from/mcexec" "$prefix/bin/mcexec"
