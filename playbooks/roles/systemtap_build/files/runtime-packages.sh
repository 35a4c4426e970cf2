#!/bin/sh
# Print the packages that own the shared libraries a built prefix's programs load, one per line.
# Usage: runtime-packages.sh PREFIX
# Why: hosts that install the builder's prefix instead of compiling need these libraries (the build
# dependencies' runtime halves); the builder knows exactly which ones it linked. POSIX sh.
prefix=$1
libs=$(for f in "$prefix"/bin/* "$prefix"/libexec/systemtap/*; do
    if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
    ldd "$f" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p'
done | sort -u)
[ -n "$libs" ] || exit 0
if command -v dpkg-query >/dev/null 2>&1; then
    for l in $libs; do
        dpkg-query -S "$l" 2>/dev/null || dpkg-query -S "$(readlink -f "$l")" 2>/dev/null
    done | sed -n 's/^\([^:,]*\)\(:[a-z0-9]*\)\{0,1\}: .*/\1/p'
elif command -v rpm >/dev/null 2>&1; then
    for l in $libs; do rpm -qf --qf '%{NAME}\n' "$l" 2>/dev/null; done
fi | sort -u
