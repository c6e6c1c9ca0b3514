#!/usr/bin/env bash
# The test command of the README: installs missing dependencies, builds the
# whole workspace (which also builds the LWK image), and runs every test.
# Needs root and /dev/kvm for the partition tests (they boot real KVM
# partitions in `pin` mode and always release them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
cargo build --workspace --all-targets
scripts/check-leftovers.sh
cargo test --workspace -- --test-threads=1 "$@"
