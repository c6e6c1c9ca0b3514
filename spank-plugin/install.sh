#!/usr/bin/env bash
# Installs the Slurm integration into a prefix:
#   <prefix>/lib/slurm/spank_mckernel.so        the SPANK plugin
#   <prefix>/sbin/mckernel-epilog               the job epilogue (slurm.conf Epilog=)
#   <prefix>/etc/slurm/mckernel.toml.example    a site configuration for this prefix
# and prints the plugstack.conf line. See spank-plugin/README.md.
# Usage: spank-plugin/install.sh <prefix> <cargo profile dir, e.g. target/release>
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 <prefix> <cargo profile dir>" >&2
    exit 2
fi
prefix=$1
profile=$2
here=$(cd "$(dirname "$0")" && pwd)
for f in libspank_mckernel.so mckernel-epilog; do
    if [ ! -f "$profile/$f" ]; then
        echo "$0: $profile/$f not found: build first (cargo build --release -p spank-plugin)" >&2
        exit 1
    fi
done
install -d "$prefix/lib/slurm" "$prefix/sbin" "$prefix/etc/slurm"
install -m 0755 "$profile/libspank_mckernel.so" "$prefix/lib/slurm/spank_mckernel.so"
install -m 0755 "$profile/mckernel-epilog" "$prefix/sbin/mckernel-epilog"
sed "s|^prefix = .*|prefix = \"$prefix\"|" "$here/mckernel.toml.example" > "$prefix/etc/slurm/mckernel.toml.example"
echo "spank-plugin: installed; add to plugstack.conf:"
echo "  required $prefix/lib/slurm/spank_mckernel.so config=/etc/slurm/mckernel.toml"
