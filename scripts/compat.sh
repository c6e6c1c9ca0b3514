#!/usr/bin/env bash
# Linux compatibility at scale (issue 19): runs the same programs natively
# and under mcexec on an LWK partition this script boots, and prints one
# line per case with each side's result:
#   - CPython's own regression test modules (Debian's libpython3.11-testsuite,
#     `python3.11 -m test -v --junit-xml`): tests passed on each side, time,
#     and the ratio of the tests passing on Linux that pass on the LWK too
#     (list: scripts/compat/python-modules.txt);
#   - busybox applets (scripts/compat/busybox.txt): same status and output;
#   - stress-ng's `--class os` stressors, short runs: the LWK passes where
#     Linux passes.
# Writes the Markdown report to $MCK_COMPAT_REPORT (default
# target/compat/report.md) and the logs beside it; docs/compat.md says what
# the differences are. Needs root and /dev/kvm; boots `mcreboot -c 1` in pin
# mode (only the vCPU thread is pinned) in a private runtime directory, takes
# the partition lock the tests use, and always shuts down and releases.
#
# Usage: scripts/compat.sh [python|busybox|stress] ...   (default: all three)
# Environment: MCK_COMPAT_MODULES (space-separated modules instead of the
# list), MCK_COMPAT_BUSYBOX (a case file instead of
# scripts/compat/busybox.txt), MCK_COMPAT_TIMEOUT (seconds per CPython module under mcexec, 1800),
# MCK_COMPAT_STRESS_SECS (seconds per stressor, 2), MCK_COMPAT_STRESSORS
# (instead of the whole class), MCK_MEM (2G), MCK_CPU (1),
# MCK_INSTALL_PROFILE (release), MCK_COMPAT_OUT (logs and results,
# target/compat); MCK_COMPAT_BIN (a directory of built binaries to use
# instead of installing) and MCK_COMPAT_LOCKED=1 (the caller holds the
# partition lock) are for the CI subset, mcexec/tests/compat.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(python busybox stress)

if [ -n "${MCK_COMPAT_BIN:-}" ]; then
    # Built binaries as they are (the CI subset: mcexec/tests/compat.rs).
    export PATH=$MCK_COMPAT_BIN:$PATH IHKD=$MCK_COMPAT_BIN/ihkd MCKERNEL_IMAGE=$MCK_COMPAT_BIN/mckernel.img
    release_cmd=mcstop-release
else
    scripts/setup-deps.sh
    P=${MCK_PREFIX:-$root/target/install}
    scripts/install.sh "$P" >/dev/null
    export PATH=$P/sbin:$P/bin:$PATH
    release_cmd=mcstop+release
fi
export IHK_ISOLATION=pin
PY=/usr/bin/python3.11
BB=/bin/busybox
out=${MCK_COMPAT_OUT:-$root/target/compat}
report=${MCK_COMPAT_REPORT:-$out/report.md}
rm -rf "$out/logs"
mkdir -p "$out/logs" "$(dirname "$report")"
export COMPAT_RESULTS=$out/results.tsv
: > "$COMPAT_RESULTS"
R="$PY $root/scripts/compat/report.py"

# The partition lock of the test suite (one partition at a time here),
# unless the caller (a test) holds it.
if [ "${MCK_COMPAT_LOCKED:-0}" != 1 ]; then
    exec 9>"${TMPDIR:-/tmp}/ihk-integration-tests.lock"
    echo "compat: waiting for the partition lock"
    flock 9
fi
IHK_RUNTIME_DIR=$(mktemp -d -t mck-compat.XXXXXX)
export IHK_RUNTIME_DIR
work=$(mktemp -d -t mck-compat-work.XXXXXX)
cleanup() {
    $release_cmd || echo "compat: mcstop+release failed" >&2
    rm -rf "$IHK_RUNTIME_DIR" "$work"
}
trap cleanup EXIT
mcreboot -c "${MCK_CPU:-1}" -m "${MCK_MEM:-2G}"
started=$(date +%s)

# run <dir> <timeout> <cwd> <command...>: rc, secs, out in <dir>.
run() {
    local d=$1 t=$2 cwd=$3
    shift 3
    mkdir -p "$d"
    local s e rc=0
    s=$(date +%s.%N)
    (cd "$cwd" && timeout -k 20 "$t" "$@") > "$d/out" 2>&1 < /dev/null || rc=$?
    e=$(date +%s.%N)
    echo "$rc" > "$d/rc"
    printf '%.1f\n' "$(echo "$e - $s" | bc)" > "$d/secs"
}

python_part() {
    local mods
    if [ -n "${MCK_COMPAT_MODULES:-}" ]; then
        mods=$MCK_COMPAT_MODULES
    else
        mods=$(grep -v '^#' scripts/compat/python-modules.txt | awk 'NF { print $1 }')
    fi
    for m in $mods; do
        local t
        t=$(awk -v m="$m" '$1 == m && NF > 1 { print $2 }' scripts/compat/python-modules.txt)
        t=${t:-${MCK_COMPAT_TIMEOUT:-1800}}
        for side in native lwk; do
            local d=$out/logs/python/$m/$side cwd=$work/py-$m-$side
            mkdir -p "$cwd" "$d"
            local cmd=("$PY" -m test -v --junit-xml "$d/junit.xml" "$m")
            if [ $side = lwk ]; then cmd=(mcexec "${cmd[@]}"); fi
            run "$d" "$t" "$cwd" "${cmd[@]}"
        done
        $R python "$m" "$out/logs/python/$m/native" "$out/logs/python/$m/lwk"
    done
}

# The fixture directory of the busybox cases: fixed contents and times.
fixture() {
    local f=$1
    rm -rf "$f"
    mkdir -p "$f/dir/sub" "$f/bin"
    printf 'first line\nsecond line\nthird\nline four\n' > "$f/a.txt"
    printf 'first line\nother\n' > "$f/b.txt"
    seq 1 3 40 > "$f/nums.txt"
    printf 'x\n' > "$f/dir/x"
    printf 'yy\n' > "$f/dir/sub/y"
    find "$f" -exec touch -h -d '2024-01-02 03:04:05 UTC' {} +
}

busybox_part() {
    local bin=$work/bbbin
    mkdir -p "$bin"
    $BB --install -s "$bin"
    while IFS=$'\t' read -r name cmd; do
        case "$name" in ''|'#'*) continue ;; esac
        for side in native lwk; do
            local f=$work/bb
            fixture "$f"
            local c=(env PATH="$bin" $BB sh -c "$cmd")
            if [ $side = lwk ]; then c=(mcexec "${c[@]}"); fi
            run "$out/logs/busybox/$name/$side" 120 "$f" "${c[@]}"
        done
        $R plain busybox "$name" "$out/logs/busybox/$name/native" "$out/logs/busybox/$name/lwk"
    done < "${MCK_COMPAT_BUSYBOX:-scripts/compat/busybox.txt}"
}

# Stressors left out: they act on the machine rather than on the test's
# own processes (reboot, swap, module and device files, raw network, CPU
# hot-plug, mounts, hardware, host memory to exhaustion or locked), or fire
# invalid system calls that, offloaded, would run inside mcexec itself.
STRESS_SKIP=" af-alg apparmor bad-ioctl bigheap binderfs bind-mount cpu-online dccp dev efivar
 enosys fanotify icmp-flood idle-page klog kvm landlock loop memhotplug mlock mlockmany
 netlink-proc netlink-task oom-pipe pci quota ramfs rawpkt rawsock rawudp reboot rtc smi
 sockdiag swap sysbadaddr sysfs sysinval syscall tmpfs tun udp-flood umount usersyscall
 verity watchdog x86syscall "
stress_part() {
    local list secs=${MCK_COMPAT_STRESS_SECS:-2}
    if [ -n "${MCK_COMPAT_STRESSORS:-}" ]; then
        list=$MCK_COMPAT_STRESSORS
    else
        list=$(stress-ng --class 'os?' 2>&1 | sed -n "s/^class 'os' stressors: //p")
    fi
    for s in $list; do
        case "$STRESS_SKIP" in *" $s "*) continue ;; esac
        for side in native lwk; do
            local cwd=$work/st-$s-$side
            mkdir -p "$cwd"
            local c=(stress-ng --"$s" 1 --timeout "${secs}s" --temp-path "$cwd" --metrics-brief)
            if [ $side = lwk ]; then c=(mcexec "${c[@]}"); fi
            run "$out/logs/stress/$s/$side" $((secs * 30 + 60)) "$cwd" "${c[@]}"
        done
        $R plain stress-ng "$s" "$out/logs/stress/$s/native" "$out/logs/stress/$s/lwk"
    done
}

for part in "${parts[@]}"; do
    case "$part" in
        python) python_part ;;
        busybox) busybox_part ;;
        stress) stress_part ;;
        *) echo "compat: unknown part '$part' (python, busybox, stress)" >&2; exit 2 ;;
    esac
done
took=$(( $(date +%s) - started ))
export COMPAT_META="Run on $(date -u '+%Y-%m-%d') ($(uname -r), $(nproc) CPUs): \`mcreboot -c ${MCK_CPU:-1} -m ${MCK_MEM:-2G}\`, pin mode; $($PY --version), busybox $($BB 2>&1 | head -1 | awk '{print $2}'), $(stress-ng --version | awk '{print $3}' | tr -d ,) stress-ng; ${took} s in all."
$R report "$COMPAT_RESULTS" "$report"
echo "compat: ${took} s; report in $report"
