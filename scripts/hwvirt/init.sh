#!/bin/busybox sh
# /init of the hardware-virtualization guest (scripts/hwvirt-check.sh).
# Runs inside a QEMU TCG guest whose CPU has SVM + NPT: loads kvm_amd, then
# runs the McKernel stack against the guest's hardware-virtualized /dev/kvm.
# Every check prints one line "HWV: ok <name>" or "HWV: FAIL <name>: <why>"
# on the serial console; "HWV: done" ends the run, then the guest powers off.
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/opt/mckernel/sbin:/opt/mckernel/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/shm /dev/hugepages
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t hugetlbfs hugetlbfs /dev/hugepages
hostname hwvirt-guest
exec </dev/null

fails=0
ok() { echo "HWV: ok $*"; }
fail() { echo "HWV: FAIL $*"; fails=$((fails + 1)); }
# Indented copy of a file or command output in the log (for docs and debugging).
show() { sed 's/^/HWV|   /'; }
# run <seconds> <cmd...>: a command with a time limit; output in $out, status in $rc.
run() {
    t=$1; shift
    out=$(timeout "$t" "$@" 2>&1); rc=$?
}
finish() {
    echo "HWV: kmsg-begin"
    timeout 30 ihkosctl 0 kmsg 2>/dev/null | show
    echo "HWV: kmsg-end"
    # The partition may still be there after a failure: give the node back.
    [ -S /run/ihk/mcd0 ] && timeout 60 mcstop+release >/dev/null 2>&1
    echo "HWV: done fails=$fails"
    sync
    poweroff -f
}

threads=0
grep -qw hwv_threads=1 /proc/cmdline && threads=1
# hwv_mode=hwvirt: a hypervisor that handles XSETBV: XSAVE and AVX must be on.
# hwv_mode=xcr0-lost: QEMU 7.2, which loses the LWK's XCR0 at every VM exit:
# the LWK must notice and keep XSAVE/AVX off (lwk/src/process/fpu.rs).
mode=hwvirt
grep -qw hwv_mode=xcr0-lost /proc/cmdline && mode=xcr0-lost && threads=0

echo "HWV: guest up ($mode): $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"

# 1. The virtual CPU has AMD-V with nested paging.
flags=$(grep -m1 '^flags' /proc/cpuinfo)
missing=""
for f in svm npt avx2 xsave; do
    echo "$flags" | grep -qw "$f" || missing="$missing $f"
done
if [ -z "$missing" ]; then ok "cpu has svm npt avx2 xsave"; else fail "cpu flags: missing$missing"; fi

# 2. kvm_amd loads and /dev/kvm is there.
kdir=/lib/modules/hwvirt
modout=""
for m in irqbypass kvm ccp kvm-amd; do
    modout="$modout$(insmod $kdir/$m.ko 2>&1)"
done
if [ -c /dev/kvm ] && [ -d /sys/module/kvm_amd ]; then
    ok "kvm_amd loaded: nested=$(cat /sys/module/kvm_amd/parameters/nested) npt=$(cat /sys/module/kvm_amd/parameters/npt) /dev/kvm present"
else
    fail "kvm_amd: $modout $(dmesg | grep -i -E 'kvm|svm' | tail -5)"
    finish
fi

# 3. mcreboot.
export IHK_ISOLATION=pin MCREBOOT_BOOT_TIMEOUT=300
t0=$(date +%s)
run 400 mcreboot -c 1 -m 256M
t1=$(date +%s)
if [ $rc -eq 0 ]; then ok "mcreboot -c 1 -m 256M ($((t1 - t0)) s)"; else
    fail "mcreboot -c 1 -m 256M: rc=$rc $out"
    cat /run/ihk/ihkd.log 2>/dev/null | tail -20 | show
    dmesg | tail -20 | show
    finish
fi
run 30 ihkosctl 0 get status
if [ "$out" = RUNNING ]; then ok "ihkosctl 0 get status: RUNNING"; else fail "status: rc=$rc $out"; fi

# 4. The LWK's boot log: XSAVE on, not the emulated-kernel fallback.
run 30 ihkosctl 0 kmsg
kmsg=$out
if echo "$kmsg" | grep -q 'instruction emulation'; then
    fail "kmsg: the LWK detected instruction emulation: $(echo "$kmsg" | grep 'instruction emulation')"
elif [ $mode = xcr0-lost ]; then
    if line=$(echo "$kmsg" | grep -m1 'fpu: XCR0 .* after a VM exit') && echo "$kmsg" | grep -q 'fpu: XSAVE off'; then
        ok "kmsg: ${line#*: }; fpu: XSAVE off"
    else
        fail "kmsg: the LWK did not notice the lost XCR0: $(echo "$kmsg" | grep 'fpu:' | tr '\n' ' ')"
    fi
elif line=$(echo "$kmsg" | grep -m1 'fpu: XSAVE on'); then
    ok "kmsg: ${line#*: }"
else
    fail "kmsg: no 'fpu: XSAVE on' line: $(echo "$kmsg" | grep 'fpu:' | tr '\n' ' ')"
fi

# 5. Busybox programs through mcexec, compared with Linux.
check_same() {
    name=$1; shift
    run 300 mcexec "$@"; lwk=$out; lrc=$rc
    linux=$("$@" 2>&1); xrc=$?
    if [ $lrc -eq $xrc ] && [ "$lwk" = "$linux" ]; then ok "mcexec $name"; else
        fail "mcexec $name: LWK rc=$lrc '$lwk', Linux rc=$xrc '$linux'"
    fi
}
check_same "busybox echo" /bin/busybox echo hello from the LWK
check_same "busybox uname -snm" /bin/busybox uname -snm
check_same "busybox sh -c (fork+exec+pipe)" /bin/busybox sh -c 'for i in 1 2 3; do echo line $i; done | /bin/busybox wc -l; /bin/busybox ls /opt/mckernel'
run 300 /bin/busybox sh -c 'seq 1 20000 | mcexec /bin/busybox md5sum'
lwk=${out%% *}; linux=$(seq 1 20000 | md5sum); linux=${linux%% *}
if [ $rc -eq 0 ] && [ "$lwk" = "$linux" ]; then ok "mcexec busybox md5sum of 20000 lines"; else
    fail "mcexec busybox md5sum: rc=$rc LWK '$out' Linux '$linux'"
fi
# The vDSO (docs/pvm.md): mapped, and busybox's clock (read in user mode)
# within 2 s of Linux's.
run 60 mcexec /bin/busybox sh -c 'grep -c "\[vdso\]" /proc/self/maps; date +%s'
now=$(date +%s); lwk_now=$(echo "$out" | tail -n 1)
if [ $rc -eq 0 ] && [ "$(echo "$out" | head -n 1)" = 1 ] && [ $((now - lwk_now)) -le 2 ] && [ $((lwk_now - now)) -le 2 ]; then
    ok "mcexec busybox date through the vDSO: LWK $lwk_now, Linux $now"
else
    fail "mcexec vDSO: rc=$rc '$out', Linux $now"
fi
run 60 mcexec /bin/busybox sh -c 'exit 7'
if [ $rc -eq 7 ]; then ok "mcexec exit status 7"; else fail "mcexec exit status: $rc $out"; fi

# 6. AVX2 across a signal handler and context switches between two LWK processes.
run 300 mcexec /hwv/avx-check
if [ $mode = xcr0-lost ]; then
    # AVX must not be advertised (OSXSAVE clear), not advertised and broken.
    if [ $rc -eq 1 ] && echo "$out" | grep -q 'OSXSAVE is 0'; then
        ok "mcexec avx-check: AVX not advertised to programs (CPUID.OSXSAVE 0)"
    else
        fail "mcexec avx-check: rc=$rc $out"
    fi
elif [ $rc -eq 0 ] && echo "$out" | grep -q '^avx-check: ok'; then ok "mcexec avx-check: ${out#avx-check: ok }"; else
    fail "mcexec avx-check: rc=$rc $out"
fi

# 7. (unless MCK_HWVIRT_THREADS=0) a 2-thread program on the 2-CPU partition.
if [ $threads = 1 ]; then
    run 300 mcexec /hwv/threads-check
    if [ $rc -eq 0 ] && echo "$out" | grep -q '^threads-check: ok'; then ok "mcexec ${out#threads-check: ok }"; else
        fail "mcexec threads-check: rc=$rc $out"
    fi
fi

# 8. System calls came in through the ring-0 SYSCALL entry.
run 30 ihkosctl 0 kmsg
kmsg=$out
if echo "$out" | grep -q 'syscall entry: .*emulated'; then
    fail "kmsg: $(echo "$out" | grep -m1 'syscall entry:')"
elif line=$(echo "$out" | grep -m1 'syscall entry: SYSCALL/SYSRET'); then
    ok "kmsg: ${line#*: }"
else
    fail "kmsg: no 'syscall entry:' line"
fi

# 9. mcstop+release.
run 300 mcstop+release
if [ $rc -eq 0 ]; then ok "mcstop+release"; else fail "mcstop+release: rc=$rc $out"; fi
if [ ! -S /run/ihk/mcd0 ] && [ "$(cat /proc/sys/vm/nr_hugepages)" = 0 ]; then
    ok "node released (no ihkd, no huge pages left)"
else
    fail "node not released: $(ls /run/ihk 2>&1) nr_hugepages=$(cat /proc/sys/vm/nr_hugepages)"
fi
# 10. Two LWK CPUs (guest CPUs 1-2): the x2APIC wake-up IPI at boot, two
# programs at once (one per LWK CPU), the stop IPI at shutdown.
if [ $mode = hwvirt ] && [ "$(grep -c ^processor /proc/cpuinfo)" -ge 3 ]; then
    run 400 mcreboot -c 1,2 -m 256M
    if [ $rc -eq 0 ]; then
        run 30 ihkosctl 0 kmsg
        kmsg2=$out
        if line=$(echo "$kmsg2" | grep -m1 'BSP: booted 1 AP CPUs') && echo "$kmsg2" | grep -q 'AP: 1 .* online'; then
            ok "mcreboot -c 1,2 -m 256M: ${line#*: }"
        else
            fail "mcreboot -c 1,2: $(echo "$kmsg2" | grep -E 'BSP|AP' | tr '\n' ' ')"
        fi
        (timeout 300 mcexec /hwv/avx-check >/tmp/avx1 2>&1; echo "rc=$?" >>/tmp/avx1) &
        (timeout 300 mcexec /hwv/avx-check >/tmp/avx2 2>&1; echo "rc=$?" >>/tmp/avx2) &
        wait
        if grep -q '^avx-check: ok' /tmp/avx1 && grep -q '^avx-check: ok' /tmp/avx2 && grep -q '^rc=0' /tmp/avx1 && grep -q '^rc=0' /tmp/avx2; then
            ok "two avx-check programs at once on 2 LWK CPUs"
        else
            fail "two avx-check at once: $(cat /tmp/avx1 /tmp/avx2 | tr '\n' ' ')"
        fi
        run 300 mcstop+release
        if [ $rc -eq 0 ] && [ ! -S /run/ihk/mcd0 ]; then ok "mcstop+release of the 2-CPU partition"; else
            fail "mcstop+release (2 CPUs): rc=$rc $out"
        fi
    else
        fail "mcreboot -c 1,2 -m 256M: rc=$rc $out"
    fi
fi

echo "HWV: kmsg-begin"
echo "$kmsg" | show
echo "HWV: kmsg-end"
echo "HWV: done fails=$fails"
sync
poweroff -f
