#!/usr/bin/env bash
# The test command of the README: installs missing dependencies, builds the
# whole workspace (which also builds the LWK image), and runs every test.
# Needs root and /dev/kvm for the partition tests (they boot real KVM
# partitions in `pin` mode and always release them), then runs
# scripts/hwvirt-check.sh (the stack on nested SVM in QEMU guests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
cargo build --workspace --all-targets
scripts/check-leftovers.sh
# Every partition test takes the partition lock, which tallies it here; under
# CI=true (or MCK_REQUIRE_KVM=1) a test that cannot boot partitions fails
# instead of skipping itself.
export MCK_PARTITION_TALLY
MCK_PARTITION_TALLY=$(mktemp -t mck-partition-tally.XXXXXX)
trap 'rm -f "$MCK_PARTITION_TALLY"' EXIT
cargo test --workspace -- --test-threads=1 "$@"
# The soak of docs/reliability.md: MCK_SOAK_N boots, programs and releases
# through one ihkd (50 take about 40 s), failing on any growth. Skipped
# when arguments select tests.
if [ $# -eq 0 ]; then
    scripts/soak.sh "${MCK_SOAK_N:-50}"
fi
echo "test.sh: $(wc -l < "$MCK_PARTITION_TALLY") partition tests booted real KVM partitions"
# The hardware-virtualization check (docs/hwvirt.md): the debug build above,
# in QEMU guests with nested SVM (about 2 minutes). Skipped when arguments
# select tests, or with MCK_HWVIRT=0.
if [ $# -eq 0 ] && [ "${MCK_HWVIRT:-1}" != 0 ]; then
    MCK_INSTALL_PROFILE=debug scripts/hwvirt-check.sh
fi
