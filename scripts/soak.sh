#!/usr/bin/env bash
# scripts/soak.sh N [MEM]: the soak test of issue 20 (item 2). N times:
# `mcreboot -c 1 -m MEM` (pin isolation), run a program through `mcexec`,
# shut the instance down and give CPU and memory back; then `mcstop+release`.
# One ihkd serves all N boots (mcreboot reuses a running ihkd), so a leak in
# it adds up: after every iteration, with no instance left, its descriptors,
# threads, memfds, /dev/kvm descriptors and resident memory are sampled, and
# the host's hugepage pools compared with their values before the first
# boot. At the end it prints the start and end values and fails on growth:
#   - ihkd's descriptors or threads above those after the first iteration,
#     any memfd or /dev/kvm descriptor left in ihkd without an instance;
#   - ihkd's resident memory more than MCK_SOAK_RSS_SLACK_KB (4096) above
#     that after the second iteration (the allocator's first-use growth);
#   - hugepage pools (every size, every NUMA node) not back to the start;
#   - after mcstop+release: an ihkd left, a socket or pid file left in the
#     runtime directory, a journal record left.
# Host MemAvailable is printed too, not checked: other work on the machine
# moves it by far more than any leak would.
#
# Each iteration holds the partition lock ($TMPDIR/ihk-integration-tests.lock)
# only while it has a partition (a few seconds), so parallel partition tests
# interleave; hugepages are read while the lock is held. Without root or
# /dev/kvm it skips itself, except under CI=true or MCK_REQUIRE_KVM=1.
# Binaries: MCK_BIN (default target/debug, built by scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:?usage: scripts/soak.sh N [MEM]}
MEM=${2:-256M}
BIN=$(cd "${MCK_BIN:-target/debug}" && pwd)

if [ "$(id -u)" != 0 ] || [ ! -e /dev/kvm ]; then
    why="needs root and /dev/kvm"
    if [ "${CI:-}" = true ] || [ "${MCK_REQUIRE_KVM:-}" = 1 ]; then
        echo "soak: cannot run ($why), and CI=true or MCK_REQUIRE_KVM=1 forbids skipping" >&2
        exit 1
    fi
    echo "soak: skipping ($why)"
    exit 0
fi
for b in ihkd mcreboot mcstop-release ihkconfig mcexec mckernel.img; do
    [ -e "$BIN/$b" ] || { echo "soak: $BIN/$b missing (cargo build --workspace first)" >&2; exit 1; }
done

RT=$(mktemp -d -t ihk-test-soak.XXXXXX)
export IHK_RUNTIME_DIR=$RT IHK_ISOLATION=pin IHKD=$BIN/ihkd MCKERNEL_IMAGE=$BIN/mckernel.img
LOCK=${TMPDIR:-/tmp}/ihk-integration-tests.lock
exec 9>>"$LOCK"
[ -n "${MCK_PARTITION_TALLY:-}" ] && echo "$$ soak.sh" >> "$MCK_PARTITION_TALLY"

lock() { flock 9; }
# The IHK commands run without the lock's descriptor (9>&-), so that no
# process they start can keep it.
cmd() { "$@" 9>&-; }
unlock() { flock -u 9; }
cleanup() {
    lock
    cmd "$BIN/mcstop-release" >/dev/null 2>&1 || echo "soak: cleanup: mcstop+release failed" >&2
    unlock
    rm -rf "$RT"
}
trap cleanup EXIT

fail() { echo "soak: FAIL: $*" >&2; exit 1; }
hugepages() { # every pool of every size and node: "path=value" lines
    grep -H . /sys/kernel/mm/hugepages/*/{nr,free,resv,surplus}_hugepages \
        /sys/devices/system/node/node*/hugepages/*/{nr,free,surplus}_hugepages 2>/dev/null | sort
}
mem_available() { awk '/^MemAvailable:/ {print $2}' /proc/meminfo; }
ihkd_pid() { cat "$RT/ihkd.pid" 2>/dev/null; }
alive() { # a process that has not exited (a zombie has; its parent reaps it)
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}
fds() { ls "/proc/$1/fd" | wc -l; }
fd_links() { # descriptors of $1 whose target contains $2
    local n=0 f
    for f in /proc/"$1"/fd/*; do
        case "$(readlink "$f" 2>/dev/null)" in *"$2"*) n=$((n + 1)) ;; esac
    done
    echo $n
}
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

lock
hp_start=$(hugepages)
unlock
mem_start=$(mem_available)
start_s=$(date +%s)
for i in $(seq 1 "$N"); do
    lock
    out=$(cmd "$BIN/mcreboot" -c 1 -m "$MEM" 2>&1) || fail "iteration $i: mcreboot: $out"
    out=$(cmd "$BIN/mcexec" /bin/busybox echo "soak $i" 2>&1) || fail "iteration $i: mcexec: $out"
    [ "$out" = "soak $i" ] || fail "iteration $i: mcexec printed '$out'"
    cmd "$BIN/ihkconfig" 0 destroy 0 || fail "iteration $i: destroy"
    cmd "$BIN/ihkconfig" 0 release cpu 1 || fail "iteration $i: release cpu"
    cmd "$BIN/ihkconfig" 0 release mem all || fail "iteration $i: release mem"
    [ "$(hugepages)" = "$hp_start" ] || fail "iteration $i: hugepage pools differ from the start:
$(diff <(echo "$hp_start") <(hugepages))"
    pid=$(ihkd_pid)
    unlock
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || fail "iteration $i: ihkd is gone"
    [ -z "${first_pid:-}" ] && first_pid=$pid
    [ "$pid" = "$first_pid" ] || fail "iteration $i: ihkd was restarted ($first_pid, now $pid)"
    f=$(fds "$pid") t=$(threads "$pid") r=$(rss_kb "$pid")
    memfds=$(fd_links "$pid" memfd:) kvm=$(fd_links "$pid" /dev/kvm)
    held=$(fd_links "$pid" "$LOCK")
    [ "$held" = 0 ] || fail "iteration $i: ihkd holds the partition lock file"
    [ "$memfds" = 0 ] && [ "$kvm" = 0 ] || fail "iteration $i: ihkd holds $memfds memfds and $kvm /dev/kvm descriptors without an instance"
    if [ "$i" = 1 ]; then
        fds1=$f threads1=$t rss1=$r
        echo "soak: one iteration took $(( $(date +%s) - start_s )) s"
    fi
    [ "$i" = 2 ] && rss2=$r
    [ "$f" -le "$fds1" ] || fail "iteration $i: ihkd has $f descriptors, $fds1 after the first"
    [ "$t" -le "$threads1" ] || fail "iteration $i: ihkd has $t threads, $threads1 after the first"
    [ $((i % ${MCK_SOAK_EVERY:-10})) = 0 ] && echo "soak: $i/$N: ihkd fds $f threads $t rss ${r} kB"
done
rss_end=$r
lock
cmd "$BIN/mcstop-release" || fail "mcstop+release"
hp_end=$(hugepages)
unlock
mem_end=$(mem_available)
alive "$first_pid" && fail "ihkd $first_pid still runs after mcstop+release"
left=$(find "$RT" \( -type s -o -name '*.pid' \) | tr '\n' ' ')
[ -z "$left" ] || fail "left in the runtime directory: $left"
[ ! -s "$RT/journal" ] || fail "journal not empty: $(cat "$RT/journal")"
[ "$hp_end" = "$hp_start" ] || fail "hugepage pools differ after mcstop+release"

slack=${MCK_SOAK_RSS_SLACK_KB:-4096}
echo "soak: $N boots in $(( $(date +%s) - start_s )) s"
echo "soak: ihkd descriptors: $fds1 after the first iteration, $f after the last"
echo "soak: ihkd threads:     $threads1 after the first iteration, $t after the last"
echo "soak: ihkd RSS:         ${rss1} kB after the first, ${rss2:-$rss1} kB after the second, ${rss_end} kB after the last (slack ${slack} kB)"
echo "soak: hugepage pools:   $(echo "$hp_start" | grep -c .) values, equal at the start and the end"
echo "soak: host MemAvailable: ${mem_start} kB at the start, ${mem_end} kB at the end (not checked)"
[ "$rss_end" -le $(( ${rss2:-$rss1} + slack )) ] || fail "ihkd's RSS grew by $(( rss_end - ${rss2:-$rss1} )) kB"
echo "soak: OK"
