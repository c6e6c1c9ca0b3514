#!/usr/bin/env bash
# The kernel-entry experiment of docs/pvm.md: boots a 1-CPU partition with
# the kernel argument `pvm_probe` (the LWK times instruction sequences in
# its kernel mode at boot: lwk/src/probe.rs), runs examples/bench/entry.c
# (the same loop in user mode, a raw getpid, clock_gettime) under mcexec
# and natively pinned to the same CPU, and prints the probe's kmsg lines,
# both sides' figures and the LWK's kernel-entry trace summary; with
# `pvm_profile=39` (MCK_PVM_PROFILE=<nr> for another call) also one getpid
# single-stepped in the kernel, its
# instructions counted per function of the LWK's symbol table (the
# kernel image's ELF symbols, `nm`).
# Root + /dev/kvm; a built tree (cargo build --workspace [--release]).
# Takes the partition lock only while its partition is up, uses its own
# runtime directory and pin isolation, and always runs mcstop+release.
# Usage: scripts/pvm-probe.sh [debug|release]   (default: release if built)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
profile=${1:-}
if [ -z "$profile" ]; then
    if [ -x "$target/release/mcreboot" ]; then profile=release; else profile=debug; fi
fi
bin=$target/$profile
for t in mcreboot mcstop-release ihkosctl mcexec; do
    [ -x "$bin/$t" ] || { echo "pvm-probe: $bin/$t missing; run cargo build --workspace" >&2; exit 2; }
done
out=$target/pvm-probe
mkdir -p "$out"
gcc -O2 -static -o "$out/entry" examples/bench/entry.c
cpu=${MCK_PVM_CPU:-1}
# The system call to single-step (39 getpid; 9 mmap, 11 munmap, 72 fcntl).
profile_nr=${MCK_PVM_PROFILE:-39}
export IHK_RUNTIME_DIR=${MCK_PVM_RUNTIME_DIR:-/run/mck-pvm-probe} IHK_ISOLATION=pin
mkdir -p "$IHK_RUNTIME_DIR"

echo "== native (Linux, pinned to CPU $cpu)"
taskset -c "$cpu" "$out/entry"

run_lwk() {
    trap '"$bin/mcstop-release" >/dev/null 2>&1 || echo "pvm-probe: mcstop+release failed" >&2' EXIT
    "$bin/mcreboot" -c "$cpu" -m 512M -e "pvm_probe pvm_profile=$profile_nr" >/dev/null
    for _ in $(seq 1 600); do
        "$bin/ihkosctl" 0 kmsg | grep -q "pvm_probe: done" && break
        sleep 0.1
    done
    echo "== LWK (mcexec, LWK CPU on Linux CPU $cpu)"
    "$bin/mcexec" "$out/entry"
    for _ in $(seq 1 600); do
        "$bin/ihkosctl" 0 kmsg | grep -q "pvm_profile: done" && break
        sleep 0.1
    done
    echo "== LWK kernel-mode probe (kmsg)"
    "$bin/ihkosctl" 0 kmsg | grep -E "pvm_probe|pvm_profile|fpu:|TSC frequency"
    echo "== LWK kernel entries (ihkosctl 0 trace): time in the kernel per system call"
    # Lines: cpu tsc us cause nr. getpid is 39, clock_gettime 228.
    "$bin/ihkosctl" 0 trace | awk '$4 == "syscall" { print $5, $3 }' | sort -k1,1n -k2,2g |
        awk '{ nr[NR] = $1; us[NR] = $2 }
             END { i = 1; while (i <= NR) { j = i; while (j <= NR && nr[j] == nr[i]) j++;
                   printf "syscall %d count %d median_us_in_kernel %s\n", nr[i], j - i, us[i + int((j - i - 1) / 2)]; i = j } }'
}
export -f run_lwk
export bin out cpu profile_nr
flock /tmp/ihk-integration-tests.lock bash -c run_lwk | tee "$out/lwk.txt" | grep -v "pvm_profile: rip="

echo "== one system call $profile_nr single-stepped in the LWK kernel: instructions per function"
grep -o "pvm_profile: .*" "$out/lwk.txt" | python3 -c '
import bisect, subprocess, sys
syms = []
for l in subprocess.run(["nm", "-C", "--defined-only", sys.argv[1]], capture_output=True, text=True).stdout.splitlines():
    f = l.split(" ", 2)
    if len(f) == 3 and f[1] in "tTwW":
        syms.append((int(f[0], 16), f[2]))
syms.sort()
addrs = [a for a, _ in syms]
per, total = {}, 0
for l in sys.stdin:
    if l.startswith("pvm_profile: rip="):
        rip, n = l.split()[1][4:], int(l.split()[2][2:])
        i = bisect.bisect_right(addrs, int(rip, 16)) - 1
        name = syms[i][1] if i >= 0 else "?"
        per[name] = per.get(name, 0) + n
        total += n
    elif "single-stepped" in l:
        print(l.strip())
for name, n in sorted(per.items(), key=lambda x: -x[1]):
    print("%6d %5.1f%%  %s" % (n, 100.0 * n / max(total, 1), name[:110]))
' "$bin/mckernel.img"
