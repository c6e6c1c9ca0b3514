#!/usr/bin/env bash
# Start-of-suite check (ARCHITECTURE.md §8): finds partitions left behind by a
# crashed run of THIS checkout's test suite and gives the node back.
# A leftover is an `ihkd` whose executable lives in this checkout's target
# directory (so this suite started it), or a non-empty journal in a test
# runtime directory whose ihkd is gone. Each is released with this checkout's
# own mcstop-release, which shuts the instances down, releases CPUs and memory
# and replays the journal. Nothing else on the machine is touched.
set -uo pipefail
cd "$(dirname "$0")/.."
target=$(cd "${CARGO_TARGET_DIR:-target}" 2>/dev/null && pwd) || exit 0
stop=""
for p in "$target/debug/mcstop-release" "$target/release/mcstop-release"; do
    [ -x "$p" ] && { stop=$p; break; }
done
[ -n "$stop" ] || exit 0

found=0
release() { # <runtime dir> <why>
    found=1
    echo "check-leftovers: $2; releasing with IHK_RUNTIME_DIR=$1 mcstop+release"
    IHK_RUNTIME_DIR=$1 "$stop" || echo "check-leftovers: warning: could not fully restore $1" >&2
}

for d in /proc/[0-9]*; do
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    case "$exe" in "$target"/*/ihkd) ;; *) continue ;; esac
    pid=${d#/proc/}
    dir=$(tr '\0' '\n' < "$d/environ" 2>/dev/null | sed -n 's/^IHK_RUNTIME_DIR=//p' | head -1)
    [ -n "$dir" ] || dir=/run/ihk
    release "$dir" "ihkd $pid of a previous run still serves $dir"
done

tmp=${TMPDIR:-/tmp}
for j in "$tmp"/*/journal; do
    [ -s "$j" ] || continue
    dir=$(dirname "$j")
    pidf="$dir/ihkd.pid"
    if [ -f "$pidf" ] && kill -0 "$(cat "$pidf" 2>/dev/null)" 2>/dev/null; then
        continue   # a live ihkd (not ours: ours were handled above)
    fi
    # Only runtime directories our tests create.
    case "$(basename "$dir")" in ihk-test-*|.tmp*|mcexec-*|bench-*|slurm-*) ;; *) continue ;; esac
    release "$dir" "journal of a crashed ihkd in $dir"
done
[ $found -eq 0 ] && echo "check-leftovers: no partition left from a previous run"
exit 0
