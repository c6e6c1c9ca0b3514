#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian 12 machine:
# the x86_64-unknown-none Rust target (for the LWK image) and the Debian
# packages used by the tests (real busybox, hwloc, Open MPI, MPICH, Slurm, munge,
# g++ and libgomp for the thread tests, stress-ng, CPython's test suite for
# the compatibility runs).
# Idempotent: installs only what is missing.
set -euo pipefail

PKGS=(busybox-static coreutils python3 libpython3.11-testsuite gcc g++ libc6-dev pkg-config clang libclang-dev stress-ng
      hwloc libhwloc-dev libudev-dev numactl gdb fonts-dejavu-core
      openmpi-bin libopenmpi-dev mpich libmpich-dev gfortran hpcc
      slurm-wlm slurmctld slurmd libslurm-dev munge)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup-deps: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
    echo "setup-deps: adding Rust target x86_64-unknown-none"
    rustup target add x86_64-unknown-none
fi
