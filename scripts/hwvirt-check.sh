#!/usr/bin/env bash
# The hardware-virtualization check: the whole stack inside a QEMU guest
# whose emulated CPU has AMD-V (SVM) with nested paging (NPT).
#
# Builds this repository's install tree, makes a small guest from Debian's
# packages only (linux-image-amd64's kernel and kvm modules, busybox-static,
# plus the install tree and the shared libraries it needs, as an initramfs),
# boots it with Debian's qemu-system-x86_64 10.0 (bookworm-backports, unpacked
# into the cache, not installed) under TCG (`-cpu max`: SVM + NPT + AVX2), and inside it loads kvm_amd and runs, against the guest's
# hardware-virtualized /dev/kvm: mcreboot -c 1 -m 256M, ihkosctl (status,
# kmsg: XSAVE on, SYSCALL/SYSRET ring-0 entry), mcexec of busybox programs,
# an AVX2 program checked across a signal handler and context switches
# between two LWK processes (scripts/hwvirt/avx-check.c), and mcstop+release.
# A second guest under Debian 12's QEMU 7.2, which loses a nested guest's
# XCR0, checks that the LWK notices and keeps AVX off.
# It also runs a 2-thread program (scripts/hwvirt/threads-check.c: threads
# on both LWK CPUs, futexes, AVX2 state per thread); MCK_HWVIRT_THREADS=0
# leaves it out.
#
# Prints one line per check ("ok ..." / "FAIL ..."), then
# "hwvirt-check: N passed, N failed"; exits non-zero on any failure. The
# QEMU process and the temporary files are removed also on failure.
# Needs root (apt-get for missing packages) but not /dev/kvm.
#
# Environment: MCK_INSTALL_PROFILE=debug (test the debug build, as
# scripts/test.sh does: no second build), MCK_HWVIRT_THREADS=0 (no
# thread check), MCK_HWVIRT_TIMEOUT (seconds per guest, default 300),
# MCK_HWVIRT_CPU (QEMU -cpu model, default max), MCK_HWVIRT_QEMU (a QEMU
# binary to use instead of bookworm-backports'), MCK_HWVIRT_FALLBACK=0 (skip
# the second guest, see step 6), MCK_HWVIRT_VERBOSE=1 (print the LWK's kmsg),
# MCK_HWVIRT_LOG=<path> (copy each guest's console to <path>.<guest>),
# MCK_HWVIRT_KEEP=1 (keep the work directory),
# MCK_HWVIRT_CACHE (where the kernel and QEMU packages are kept between
# runs, default target/hwvirt-cache).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
threads=${MCK_HWVIRT_THREADS:-1}
timeout_s=${MCK_HWVIRT_TIMEOUT:-300}
cpu_model=${MCK_HWVIRT_CPU:-max}
cache=${MCK_HWVIRT_CACHE:-$root/target/hwvirt-cache}

passed=0
failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
summary() {
    echo "hwvirt-check: took $(($(date +%s) - start)) s"
    echo "hwvirt-check: $passed passed, $failed failed"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/hwvirt-check.XXXXXX")
qpid=""
cleanup() {
    local rc=$?
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
        kill "$qpid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qpid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$qpid" 2>/dev/null || true
        wait "$qpid" 2>/dev/null || true
    fi
    if [ "${MCK_HWVIRT_KEEP:-0}" = 1 ]; then
        echo "hwvirt-check: work directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    fail "$*"
    summary
    exit 1
}

# 1. Packages (Debian's only) and the build.
scripts/setup-deps.sh
need=()
for p in cpio busybox-static gcc libc6-dev binutils file; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
    echo "hwvirt-check: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if scripts/install.sh "$work/install" >"$work/build.log" 2>&1; then
    ok "build: scripts/install.sh (${MCK_INSTALL_PROFILE:-release})"
else
    tail -30 "$work/build.log"
    die "build: scripts/install.sh failed"
fi

# 2. QEMU: Debian 12's qemu-system-x86 (7.2) does not intercept a nested
# guest's XSETBV under TCG (see docs/hwvirt.md), so the check uses the one
# of bookworm-backports (10.0), read through a private apt list and unpacked
# into the cache (the machine's apt sources and its installed QEMU are left
# alone); only the shared libraries it needs are installed, from bookworm.
qemu=${MCK_HWVIRT_QEMU:-}
qemu_env=()
qemu_args=()
if [ -z "$qemu" ]; then
    bpo=$cache/apt-bpo
    mkdir -p "$bpo/lists/partial" "$bpo/cache/archives/partial" "$bpo/debs" "$bpo/none"
    echo "deb http://deb.debian.org/debian bookworm-backports main" >"$bpo/sources.list"
    apt_bpo=(-o "Dir::Etc::SourceList=$bpo/sources.list" -o "Dir::Etc::SourceParts=$bpo/none"
             -o "Dir::State::Lists=$bpo/lists" -o "Dir::Cache=$bpo/cache")
    bpo_version() { apt-cache "${apt_bpo[@]}" madison "$1" | awk -F'|' '/bookworm-backports/ {gsub(/ /, "", $2); print $2; exit}'; }
    apt-get "${apt_bpo[@]}" update -qq || die "qemu: apt-get update of bookworm-backports failed"
    qver=$(bpo_version qemu-system-x86)
    [ -n "$qver" ] || die "qemu: no qemu-system-x86 in bookworm-backports"
    qroot=$cache/qemu-${qver//[:~+]/_}
    if [ ! -x "$qroot/usr/bin/qemu-system-x86_64" ]; then
        sver=$(bpo_version seabios)
        rm -rf "$bpo/debs" "$qroot.tmp" && mkdir -p "$bpo/debs" "$qroot.tmp"
        (cd "$bpo/debs" && apt-get "${apt_bpo[@]}" download -q "qemu-system-x86=$qver" "qemu-system-data=$qver" \
            ${sver:+"seabios=$sver"} >/dev/null 2>&1) || die "qemu: apt-get download of qemu-system-x86 $qver failed"
        for d in "$bpo"/debs/*.deb; do dpkg-deb -x "$d" "$qroot.tmp"; done
        rm -rf "$qroot" && mv "$qroot.tmp" "$qroot"
    fi
    # Its libraries, from bookworm (the package is built against them).
    libs=$(apt-cache "${apt_bpo[@]}" show "qemu-system-x86=$qver" | awk -F': ' '/^Depends:/ {print $2; exit}' \
        | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep -v -E '^(qemu-|seabios|ipxe)' || true)
    need=()
    for p in $libs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
    done
    if ((${#need[@]})); then
        echo "hwvirt-check: installing QEMU's libraries ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    qemu=$qroot/usr/bin/qemu-system-x86_64
    qemu_env=(QEMU_MODULE_DIR="$qroot/usr/lib/x86_64-linux-gnu/qemu")
    qemu_args=(-L "$qroot/usr/share/qemu" -L "$qroot/usr/share/seabios")
fi
qemu_version=$(env "${qemu_env[@]}" "$qemu" --version 2>&1 | head -1) || die "qemu: $qemu does not run: $qemu_version"

# 3. Debian's kernel (linux-image-amd64's current flavour), unpacked, not installed.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$kpkg" ] || { apt-get update -qq; kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}'); }
[ -n "$kpkg" ] || die "kernel: linux-image-amd64 has no linux-image dependency in apt's lists"
mkdir -p "$cache"
if ! ls "$cache/${kpkg}_"*.deb >/dev/null 2>&1; then
    rm -f "$cache"/linux-image-*.deb
    (cd "$cache" && apt-get download -q "$kpkg" >/dev/null 2>&1) || die "kernel: apt-get download $kpkg failed"
fi
deb=$(ls "$cache/${kpkg}_"*.deb | head -1)
dpkg-deb -x "$deb" "$work/kernel"
kver=${kpkg#linux-image-}
vmlinuz=$work/kernel/boot/vmlinuz-$kver
mods=$work/kernel/lib/modules/$kver/kernel
[ -f "$vmlinuz" ] || die "kernel: no vmlinuz in $deb"

# 4. The guest's initramfs.
ird=$work/initramfs
mkdir -p "$ird"/{bin,sbin,usr/bin,usr/sbin,lib/modules/hwvirt,hwv,opt/mckernel/sbin,opt/mckernel/bin,opt/mckernel/lib/mckernel,proc,sys,dev,run,tmp,etc}
cp /bin/busybox "$ird/bin/busybox"
file -L "$ird/bin/busybox" 2>/dev/null | grep -q "statically linked" || ldd "$ird/bin/busybox" 2>&1 | grep -q "not a dynamic" \
    || die "guest image: /bin/busybox is not the static busybox (busybox-static)"
for m in virt/lib/irqbypass arch/x86/kvm/kvm drivers/crypto/ccp/ccp arch/x86/kvm/kvm-amd; do
    f=$(ls "$mods/$m.ko"* 2>/dev/null | head -1)
    [ -n "$f" ] || die "guest image: module $m missing from $deb"
    case "$f" in
        *.xz) xz -dc "$f" >"$ird/lib/modules/hwvirt/$(basename "$m").ko" ;;
        *.zst) zstd -qdc "$f" >"$ird/lib/modules/hwvirt/$(basename "$m").ko" ;;
        *) cp "$f" "$ird/lib/modules/hwvirt/" ;;
    esac
done
inst=$work/install
for b in mcreboot mcstop+release ihkosctl ihkconfig ihkd ihkmond; do
    strip --strip-debug -o "$ird/opt/mckernel/sbin/$b" "$inst/sbin/$b"
done
strip --strip-debug -o "$ird/opt/mckernel/bin/mcexec" "$inst/bin/mcexec"
cp "$inst/lib/mckernel/mckernel.img" "$ird/opt/mckernel/lib/mckernel/"
# Shared libraries of the dynamically linked commands, at the same paths.
for b in "$ird"/opt/mckernel/sbin/* "$ird/opt/mckernel/bin/mcexec"; do
    ldd "$b" | awk '/=> \// {print $3} /^\t\// {print $1}'
done | sort -u | while read -r lib; do
    mkdir -p "$ird$(dirname "$lib")"
    cp -L "$lib" "$ird$lib"
done
gcc -static -O2 -mavx2 -Wall -o "$ird/hwv/avx-check" scripts/hwvirt/avx-check.c \
    || die "guest image: gcc -static -mavx2 avx-check.c failed"
if [ "$threads" = 1 ]; then
    gcc -static -O2 -mavx2 -pthread -Wall -o "$ird/hwv/threads-check" scripts/hwvirt/threads-check.c \
        || die "guest image: gcc threads-check.c failed"
fi
install -m 755 scripts/hwvirt/init.sh "$ird/init"
echo "root:x:0:0:root:/:/bin/sh" >"$ird/etc/passwd"
echo "root:x:0:" >"$ird/etc/group"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initramfs.cpio.gz")
ok "guest image: $kpkg, busybox-static, $qemu_version, install tree ($(du -m "$work/initramfs.cpio.gz" | cut -f1) MiB initramfs)"

# 5. Boot it: TCG, 2 vCPUs with SVM + NPT, serial console into a file.
# run_guest <label> <mode> <qemu-version> <env...> -- <qemu> <args...>
run_guest() {
    local label=$1 mode=$2 qv=$3; shift 3
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    local serial=$work/serial-$label.log txt=$work/serial-$label.txt n shown=0 t0 secs
    local fmt="s/^HWV: ok /ok   $label: /; s/^HWV: FAIL /FAIL $label: /"
    : >"$serial"
    # hwvirt: 3 vCPUs (Linux on 0, the LWK on 1, then on 1-2); xcr0-lost: 2.
    local smp=3
    [ "$mode" = hwvirt ] || smp=2
    env "${envs[@]}" nice -n 19 "$@" -accel tcg,thread=multi -cpu "$cpu_model" -smp "$smp" -m 1536M \
        -nodefaults -display none -monitor none -no-reboot \
        -serial "file:$serial" \
        -kernel "$vmlinuz" -initrd "$work/initramfs.cpio.gz" \
        -append "console=ttyS0 loglevel=4 panic=-1 mitigations=off hwv_threads=$threads hwv_mode=$mode" \
        >"$work/qemu-$label.log" 2>&1 &
    qpid=$!
    t0=$(date +%s)
    while kill -0 "$qpid" 2>/dev/null; do
        # Print each check as the guest reports it.
        n=$(grep -c '^HWV: \(ok\|FAIL\) ' "$serial" 2>/dev/null || true)
        if [ "$n" -gt "$shown" ]; then
            grep '^HWV: \(ok\|FAIL\) ' "$serial" | sed -n "$((shown + 1)),${n}p" | tr -d '\r' | sed "$fmt"
            shown=$n
        fi
        grep -q '^HWV: done' "$serial" 2>/dev/null && sleep 2 && break
        if [ $(($(date +%s) - t0)) -ge "$timeout_s" ]; then
            echo "hwvirt-check: $label still running after $timeout_s s" >&2
            break
        fi
        sleep 1
    done
    secs=$(($(date +%s) - t0))
    kill "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
    qpid=""
    tr -d '\r' <"$serial" >"$txt"
    # Lines the loop did not print yet, then the verdict.
    n=$(grep -c '^HWV: \(ok\|FAIL\) ' "$txt" || true)
    if [ "$n" -gt "$shown" ]; then
        grep '^HWV: \(ok\|FAIL\) ' "$txt" | sed -n "$((shown + 1)),${n}p" | sed "$fmt"
    fi
    passed=$((passed + $(grep -c '^HWV: ok ' "$txt" || true)))
    failed=$((failed + $(grep -c '^HWV: FAIL ' "$txt" || true)))
    if grep -q '^HWV: done' "$txt"; then
        ok "$label: guest ran to the end in $secs s and powered off ($qv)"
    else
        fail "$label: guest did not finish (${secs} s, QEMU: $(tr '\n' ' ' <"$work/qemu-$label.log" | cut -c1-300)); last console lines:"
        tail -25 "$txt"
    fi
    if [ "$failed" -gt 0 ] || [ "${MCK_HWVIRT_VERBOSE:-0}" = 1 ]; then
        echo "--- the LWK's kmsg in the $label guest ---"
        sed -n '/^HWV: kmsg-begin/,/^HWV: kmsg-end/p' "$txt" | grep '^HWV|' | sed 's/^HWV|   //'
    fi
    if [ -n "${MCK_HWVIRT_LOG:-}" ]; then
        cp "$txt" "$MCK_HWVIRT_LOG.$label" || true
    fi
}

run_guest hwvirt hwvirt "$qemu_version" "${qemu_env[@]}" -- "$qemu" "${qemu_args[@]}"

# 6. The LWK's fallback when the hypervisor loses XCR0: Debian 12's QEMU 7.2
# does not intercept the nested guest's XSETBV, so L1's KVM puts its own
# XCR0 back at the next VM entry. The LWK must notice and keep AVX off
# (lwk/src/process/fpu.rs). MCK_HWVIRT_FALLBACK=0 skips this guest.
if [ "${MCK_HWVIRT_FALLBACK:-1}" = 1 ] && [ -z "${MCK_HWVIRT_QEMU:-}" ]; then
    if ! dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q "install ok installed"; then
        echo "hwvirt-check: installing qemu-system-x86 (Debian 12's QEMU, for the XCR0 fallback guest)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
    fi
    old_qemu=/usr/bin/qemu-system-x86_64
    old_version=$("$old_qemu" --version | head -1)
    case "$old_version" in
        *"version 7."*) run_guest xcr0-lost xcr0-lost "$old_version" -- "$old_qemu" ;;
        *) echo "hwvirt-check: $old_qemu is not QEMU 7 ($old_version): XCR0 fallback guest skipped" ;;
    esac
fi
summary
[ "$failed" -eq 0 ]
