#!/usr/bin/env bash
# The main job of the README, from a fresh machine to a clean node:
# install dependencies, build, boot an LWK partition on CPU 1 with 512 MiB,
# run real unmodified Linux programs through mcexec, shut down and release.
# Uses `pin` isolation (only the vCPU thread is pinned) so it changes no
# other process on the machine. Needs root and /dev/kvm.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
P=${MCK_PREFIX:-$(pwd)/target/install}
scripts/install.sh "$P" >/dev/null
export PATH=$P/sbin:$P/bin:$PATH
export IHK_ISOLATION=${IHK_ISOLATION:-pin}
CPU=${MCK_CPU:-1}
MEM=${MCK_MEM:-512M}

cleanup() { mcstop+release || echo "main-job: mcstop+release failed" >&2; }
trap cleanup EXIT

step() { printf '\n$ %s\n' "$*"; "$@"; }
step mcreboot -c "$CPU" -m "$MEM"
step ihkosctl 0 get status
step ihkconfig 0 query cpu
step ihkosctl 0 query cpu
step ihkosctl 0 query mem
step ihkosctl 0 kmsg
step mcexec /bin/busybox hostname
step mcexec /bin/busybox uname -a
step mcexec /bin/busybox sh -c 'echo hello from the LWK; ls -l /usr | head -3'
printf '\n$ seq 1 100000 | mcexec /bin/busybox md5sum\n'
lwk=$(seq 1 100000 | mcexec /bin/busybox md5sum)
linux=$(seq 1 100000 | md5sum)
echo "$lwk   (Linux: $linux)"
[ "${lwk%% *}" = "${linux%% *}" ] || { echo "main-job: digests differ" >&2; exit 1; }
trap - EXIT
step mcstop+release
echo; echo "main-job: OK"
