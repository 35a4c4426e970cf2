#!/bin/sh
# stapdoctor fleet collector: copies what stapdoctor's checks read into a sysroot-shaped tree and
# prints it as an encoded tar.gz on stdout, so the controller decides (doctor/collected.py reads it in
# memory, doctor/snapshot.py `collect()` checks it). POSIX sh only: it runs under dash, busybox sh and
# bash, on hosts as old as Ubuntu 12.10 (no Python needed). It writes nothing outside a private
# `mktemp -d` directory, which it removes.
#
# usage: collect.sh [USER] [KERNEL_RELEASE]   (playbooks/roles/doctor_collect runs it with `raw`)
#   USER: whose `id` to record (the user who will profile); default: the collecting user.
#   KERNEL_RELEASE: the kernel to check when it is not the running one (installed, not booted yet):
#     the tree then says proc/sys/kernel/osrelease = KERNEL_RELEASE and leaves out what only the
#     running kernel has (/proc/version, /sys/kernel/notes, /proc/config.gz, /proc/kallsyms).
# Output:  "stapdoctor-collect/1 base64" (or "hex"), the encoded tar.gz, "stapdoctor-collect/1 end".
# Tree layout (see doctor/snapshot.py and doctor/collected.py): copies of regular files at their own
# paths (the build tree's under lib/modules/R/build/ itself), plus
#   .stapdoctor/commands/<name>.{out,err,rc}  (stap-V, id, uname-r, gcc-version, kernel-package)
#   .stapdoctor/env                             (DEBUGINFOD_URLS=..., SYSTEMTAP_DIR=...)
#   .stapdoctor/stat/{staprun,gcc,make}         ("MODE UID GID PATH")
#   .stapdoctor/systemtap-rc                    (the collecting user's ~/.systemtap/rc)
#   .stapdoctor/elf/vmlinux                     ("PATH BUILD_ID HAS_DWARF" per debug vmlinux found)
#   .stapdoctor/links                           ("PATH<TAB>TARGET": the build link)
#   .stapdoctor/sizes                           ("SIZE<TAB>PATH" per file whose existence matters)
set -u
umask 077
who=${1:-}
want=${2:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stapdoctor-collect.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
tree=$tmp/root
meta=$tree/.stapdoctor
R=$(uname -r)
running=yes
if [ -n "$want" ] && [ "$want" != "$R" ]; then
    R=$want
    running=no
fi
build=/lib/modules/$R/build
tab=$(printf '\t')
mkdir -p "$meta/commands" "$meta/stat" "$meta/elf" "$tree/etc" "$tree/usr/lib" "$tree/boot" \
    "$tree/proc/sys/kernel" "$tree/sys/kernel/security" "$tree/sys/module/module/parameters" \
    "$tree$build/include/generated" || exit 1

# copy FILE: a regular file's content at the same path (a FIFO, a device or a missing file is left out)
copy() {
    [ -f "$1" ] && [ -r "$1" ] || return 0
    cat "$1" > "$tree$1" 2>/dev/null || rm -f "$tree$1"
}
# presence FILE: its size in .stapdoctor/sizes (the checks want existence only; procfs says 0)
presence() {
    [ -e "$1" ] || return 0
    case $1 in
        /proc/*) size=0 ;;
        *) size=$(wc -c < "$1" 2>/dev/null) || size=0 ;;
    esac
    echo "$size$tab$1" >> "$meta/sizes"
}
# record NAME CMD...: stdout, stderr, exit code of a command
record() {
    name=$1; shift
    "$@" > "$meta/commands/$name.out" 2> "$meta/commands/$name.err" < /dev/null
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
         /proc/mounts /etc/group /sys/kernel/security/lsm /sys/fs/selinux/enforce \
         /sys/module/apparmor/parameters/enabled /etc/debuginfod/*.urls; do
    copy "$f"
done
: > "$meta/sizes"
for f in /proc/modules "/boot/System.map-$R" "/boot/vmlinuz-$R" "/lib/modules/$R/vmlinuz"; do
    presence "$f"
done
# Secure Boot (lockdown follows it): the EFI variable, and whether the host booted by EFI at all
if [ -d /sys/firmware/efi ]; then
    mkdir -p "$tree/sys/firmware/efi"
    copy /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
fi
if [ $running = yes ]; then
    for f in /proc/version /proc/version_signature /proc/sys/kernel/osrelease /sys/kernel/notes /proc/config.gz \
             /proc/cmdline; do
        copy "$f"
    done
    presence /proc/kallsyms
else
    echo "$R" > "$tree/proc/sys/kernel/osrelease"
fi

# The build link: its target is recorded; what the checks read through it is copied under the link's
# own path (the controller never follows links).
: > "$meta/links"
if [ -L "$build" ]; then
    printf '%s\t%s\n' "$build" "$(readlink "$build")" >> "$meta/links"
fi
if [ -d "$build" ]; then
    for f in .config include/generated/compile.h include/generated/utsrelease.h \
             include/generated/utsversion.h vmlinux.id; do
        copy "$build/$f"
    done
    for f in Makefile Module.symvers; do
        presence "$build/$f"
    done
else
    rm -rf "${tree:?}$build"
fi

stap=$(first_tool stap) && record stap-V "$stap" -V
echo "$R" > "$meta/commands/uname-r.out"; : > "$meta/commands/uname-r.err"; echo 0 > "$meta/commands/uname-r.rc"
if [ -n "$who" ]; then record id id "$who"; else record id id; fi
# stat_tool NAME PATH: %a keeps the setuid bit (4754); GNU and busybox stat both know -L -c
stat_tool() {
    [ -n "$2" ] || return 0
    line=$(stat -L -c '%a %u %g' "$2" 2>/dev/null) && echo "$line $2" > "$meta/stat/$1"
}
stat_tool staprun "$(first_tool staprun)"
# the toolchain pass 4 runs: the build tree's CC (a plain `CC = NAME` in its top Makefile), else gcc, whose
# version is compared with the kernel's compiler; and make
cc=
[ -f "$build/Makefile" ] && cc=$(sed -n 's/^[[:space:]]*CC[[:space:]]*:*=[[:space:]]*\([A-Za-z0-9_.+-]*\)[[:space:]]*$/\1/p' "$build/Makefile" | head -n 1)
[ -n "$cc" ] || cc=gcc
stat_tool gcc "$(command -v "$cc" 2>/dev/null)"
stat_tool make "$(command -v make 2>/dev/null)"
command -v "$cc" > /dev/null 2>&1 && record gcc-version "$cc" -dumpfullversion -dumpversion
# which package provides the kernel (none: a custom kernel, with no headers or debug package anywhere)
image=
for f in "/boot/vmlinuz-$R" "/lib/modules/$R/vmlinuz"; do
    if [ -e "$f" ]; then image=$f; break; fi
done
no_image() {
    : > "$meta/commands/kernel-package.out"
    echo "no /boot/vmlinuz-$R or /lib/modules/$R/vmlinuz" > "$meta/commands/kernel-package.err"
    echo 1 > "$meta/commands/kernel-package.rc"
}
if command -v dpkg > /dev/null 2>&1 && [ -f /var/lib/dpkg/status ]; then
    if [ -n "$image" ]; then record kernel-package dpkg -S "$image"; else no_image; fi
elif command -v rpm > /dev/null 2>&1; then
    if [ -n "$image" ]; then record kernel-package rpm -qf --qf '%{NAME}\n' "$image"; else no_image; fi
fi
[ -n "${HOME:-}" ] && [ -r "$HOME/.systemtap/rc" ] && head -c 4096 "$HOME/.systemtap/rc" > "$meta/systemtap-rc"
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

# The archive goes to a file in the private directory first, so a failing tar is an exit status here
# rather than a damaged archive on the controller.
tar -C "$tree" -czf "$tmp/snapshot.tar.gz" . 2>/dev/null || exit 1
if command -v base64 > /dev/null 2>&1; then
    echo "stapdoctor-collect/1 base64"
    base64 < "$tmp/snapshot.tar.gz" || exit 1
else
    echo "stapdoctor-collect/1 hex"
    od -An -v -tx1 < "$tmp/snapshot.tar.gz" || exit 1
fi
echo "stapdoctor-collect/1 end"
