#!/bin/bash
# Configure, make and install one systemtap source tree into its versioned prefix, logging everything.
# Usage: build-systemtap.sh LOG STEPFILE SRC PREFIX JOBS [CONFIGURE-ARG...] -- [MAKE-ARG...]
# Why a script: the compile runs as an Ansible async job (minutes to an hour) whose output must stay on
# the host as a log; every value arrives as its own argument, none is pasted into a command line.
# bash, not sh: the arguments are kept as arrays (bash >= 4.2: Ubuntu 12.10).
set -eu
log=$1 stepfile=$2 src=$3 prefix=$4 jobs=$5
shift 5
conf=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do conf+=("$1"); shift; done
[ $# -gt 0 ] && shift
make_args=("$@")
exec >>"$log" 2>&1
step() {
    printf '%s\n' "$1" > "$stepfile"
    printf '==== %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1"
}
cd "$src"
step configure
./configure --prefix="$prefix" ${conf[@]+"${conf[@]}"}
step make
make -j"$jobs" ${make_args[@]+"${make_args[@]}"}
step "make install"
make install ${make_args[@]+"${make_args[@]}"}
step "done"
