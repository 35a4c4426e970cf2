#!/bin/sh
# stapdoctor fleet collector: copies what stapdoctor's checks read into a sysroot-shaped tree and
# tars it, so the controller decides (doctor/snapshot.py `collect(root=DIR)`). POSIX sh only: it
# runs under dash, busybox sh and bash, on hosts as old as Ubuntu 12.10 (no Python needed).
#
# usage: collect.sh OUT.tar.gz [USER] [KERNEL_RELEASE]
#   USER: whose `id` to record (the user who will profile); default: the collecting user.
#   KERNEL_RELEASE: the kernel to check when it is not the running one (installed, not booted yet):
#     the tree then says proc/sys/kernel/osrelease = KERNEL_RELEASE and leaves out what only the
#     running kernel has (/proc/version, /sys/kernel/notes, /proc/config.gz, /proc/kallsyms).
# Tree layout (see doctor/snapshot.py): copies of files at their own paths, plus
#   .stapdoctor/commands/<name>.{out,err,rc}  (stap-V, id, uname-r)
#   .stapdoctor/env                             (DEBUGINFOD_URLS=..., SYSTEMTAP_DIR=...)
#   .stapdoctor/stat/staprun                    ("MODE UID GID PATH")
#   .stapdoctor/elf/vmlinux                     ("PATH BUILD_ID HAS_DWARF" per debug vmlinux found)
set -u
out=${1:?usage: collect.sh OUT.tar.gz [USER] [KERNEL_RELEASE]}
who=${2:-}
want=${3:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stapdoctor-collect.XXXXXX") || exit 1
tree=$tmp/root
meta=$tree/.stapdoctor
mkdir -p "$meta/commands" "$meta/stat" "$meta/elf"
R=$(uname -r)
running=yes
if [ -n "$want" ] && [ "$want" != "$R" ]; then
    R=$want
    running=no
fi

# copy FILE: its content at the same path in the tree (missing files are simply absent)
copy() {
    [ -r "$1" ] || return 0
    [ -d "$1" ] && return 0
    d=$(dirname "$1")
    mkdir -p "$tree$d"
    cat "$1" > "$tree$1" 2>/dev/null || rm -f "$tree$1"
}
# presence FILE: an empty file of the same size (the checks want existence and size only)
presence() {
    [ -e "$1" ] || return 0
    d=$(dirname "$1")
    mkdir -p "$tree$d"
    size=$(wc -c < "$1" 2>/dev/null) || size=0
    : > "$tree$1"
    if [ "$size" -gt 0 ] 2>/dev/null; then
        dd if=/dev/zero of="$tree$1" bs=1 count=0 seek="$size" 2>/dev/null
    fi
}
# record NAME CMD...: stdout, stderr, exit code of a command
record() {
    name=$1; shift
    "$@" > "$meta/commands/$name.out" 2> "$meta/commands/$name.err"
    echo $? > "$meta/commands/$name.rc"
}
first_tool() {
    for d in /usr/local/bin /usr/bin /bin /opt/systemtap/current/bin /usr/local/sbin /usr/sbin; do
        if [ -x "$d/$1" ] && [ ! -d "$d/$1" ]; then echo "$d/$1"; return 0; fi
    done
    return 1
}

for f in /proc/sys/kernel/modules_disabled /etc/os-release /usr/lib/os-release /etc/lsb-release \
         /etc/redhat-release "/boot/config-$R" /sys/kernel/security/lockdown \
         /sys/module/module/parameters/sig_enforce /sys/kernel/security/securelevel /proc/filesystems \
         /proc/mounts /etc/group; do
    copy "$f"
done
for f in /proc/modules "/boot/System.map-$R"; do
    presence "$f"
done
if [ $running = yes ]; then
    for f in /proc/version /proc/version_signature /proc/sys/kernel/osrelease /sys/kernel/notes /proc/config.gz; do
        copy "$f"
    done
    presence /proc/kallsyms
else
    mkdir -p "$tree/proc/sys/kernel"
    echo "$R" > "$tree/proc/sys/kernel/osrelease"
fi

# The build link: keep it a link, and copy what the checks read at the place it points to.
build=/lib/modules/$R/build
if [ -L "$build" ]; then
    mkdir -p "$tree/lib/modules/$R"
    target=$(readlink "$build")
    # relative, so the tree stays self-contained (tar's data filter refuses absolute links)
    case $target in /*) target=../../..$target ;; esac
    ln -s "$target" "$tree$build"
fi
if [ -d "$build" ]; then
    real=$(cd "$build" && pwd -P)
    for f in .config include/generated/compile.h include/generated/utsrelease.h \
             include/generated/utsversion.h vmlinux.id; do
        copy "$real/$f"
    done
    for f in Makefile Module.symvers; do
        presence "$real/$f"
    done
fi

stap=$(first_tool stap) && record stap-V "$stap" -V
echo "$R" > "$meta/commands/uname-r.out"; : > "$meta/commands/uname-r.err"; echo 0 > "$meta/commands/uname-r.rc"
if [ -n "$who" ]; then record id id "$who"; else record id id; fi
staprun=$(first_tool staprun)
if [ -n "$staprun" ]; then
    # %a keeps the setuid bit (4754); GNU and busybox stat both know -L -c
    line=$(stat -L -c '%a %u %g' "$staprun" 2>/dev/null) && echo "$line $staprun" > "$meta/stat/staprun"
fi
: > "$meta/env"
[ -n "${DEBUGINFOD_URLS:-}" ] && echo "DEBUGINFOD_URLS=$DEBUGINFOD_URLS" >> "$meta/env"
[ -n "${SYSTEMTAP_DIR:-}" ] && echo "SYSTEMTAP_DIR=$SYSTEMTAP_DIR" >> "$meta/env"

# Debug vmlinux candidates: build-id and whether DWARF is there (readelf; the files are too big to copy).
: > "$meta/elf/vmlinux"
if command -v readelf > /dev/null 2>&1; then
    for v in "/usr/lib/debug/boot/vmlinux-$R" "/usr/lib/debug/lib/modules/$R/vmlinux" "/boot/vmlinux-$R" \
             "/lib/modules/$R/vmlinux" "/lib/modules/$R/build/vmlinux" "/usr/lib/debug/vmlinux-$R"; do
        [ -f "$v" ] || continue
        id=$(readelf -n "$v" 2>/dev/null | sed -n 's/.*Build ID: *\([0-9a-f]*\).*/\1/p' | head -n 1)
        [ -n "$id" ] || id=-
        if readelf -S "$v" 2>/dev/null | grep -q '\.debug_info'; then dw=1; else dw=0; fi
        echo "$v $id $dw" >> "$meta/elf/vmlinux"
    done
fi

tar -C "$tree" -czf "$out" . 
rc=$?
rm -rf "$tmp"
exit $rc
