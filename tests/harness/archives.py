"""Signed local package archives for the Ubuntu and Fedora stand-in hosts, and an HTTP server for them.

Why: the roles' Ubuntu and Red Hat paths must install real packages through real apt and dnf with
signature checking on (``signed-by`` keyrings, ``gpgcheck=1``), yet no Ubuntu or Fedora mirror is
reachable. This module builds, from a throwaway GnuPG key:

* an apt archive shaped like archive.ubuntu.com (``ubuntu/``) holding ``linux-headers-R`` and
  ``ubuntu-dbgsym-keyring`` (carrying the test key), and one like ddebs.ubuntu.com (``ddebs/``) holding
  ``linux-image-unsigned-R-dbgsym`` as a ``.ddeb``, both made and signed by reprepro;
* one like old-releases.ubuntu.com (``old-releases/ubuntu/``, suites quantal, quantal-updates and
  quantal-security, as the roles rewrite a 12.10 host's sources.list) holding ``linux-headers-R`` and
  ``systemtap``, and, outside the served tree, the ``linux-image-R-dbgsym`` .ddeb that Launchpad serves
  for 12.10 (:mod:`stapdoctor.testing.launchpad` stands in for it);
* a dnf repository tree shaped like the Fedora archive (``fedora/linux/releases/N/Everything/x86_64/
  {os,debug/tree}``, ``updates/N/...``) of rpms built by rpmbuild, signed by rpmsign, indexed by
  createrepo_c, under Fedora's names (``kernel``, ``kernel-core``, ``kernel-devel``,
  ``kernel-debuginfo``, ``kernel-debuginfo-common-x86_64``, ``systemtap``).

The debug packages carry a real ELF vmlinux (compiled here, with DWARF) whose GNU build-id is the one
the host reports (this machine's ``/sys/kernel/notes``, which the hosts share); the headers carry the
running kernel's config and UTS version, and Fedora's ``vmlinux.id``, so ``stapdoctor check`` can pass
devel and debuginfo. Everything is cached under /var/cache/stapdoctor/archives/<key> (the key hashes
this module's format, the releases and the host's kernel identity), so warm runs build nothing.
Needs reprepro, rpm (rpmbuild, rpmsign), createrepo-c, dpkg-deb, gpg, gcc.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import textwrap
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

from stapdoctor.doctor import elfinfo

CACHE_DIR = Path(os.environ.get("STAPDOCTOR_ARCHIVES_CACHE", "/var/cache/stapdoctor/archives"))
# Bump when what is built changes, so cached archives are rebuilt.
_FORMAT = "4"
KEY_UID = "stapdoctor test archive signing key <archive@stapdoctor.invalid>"
UBUNTU_COMPONENTS = ("main", "restricted", "universe", "multiverse")


class ArchiveError(RuntimeError):
    pass


def _run(argv, **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([str(a) for a in argv], check=True, text=True, capture_output=True, **kw)
    except subprocess.CalledProcessError as err:
        raise ArchiveError(f"{' '.join(map(str, argv))} failed ({err.returncode}): {err.stderr[-2000:]}") from err


@dataclass(frozen=True)
class KernelIdentity:
    """What the hosts report about the kernel: notes (build-id), config, UTS version, release."""

    notes: bytes
    config: str
    uts_version: str
    running_release: str

    @property
    def build_id(self) -> str:
        bid = elfinfo.build_id_from_notes(self.notes)
        if not bid:
            raise ArchiveError("no GNU build-id in /sys/kernel/notes")
        return bid

    @classmethod
    def of_this_machine(cls) -> "KernelIdentity":
        notes = Path("/sys/kernel/notes").read_bytes()
        with gzip.open("/proc/config.gz", "rt") as f:
            config = f.read()
        return cls(notes=notes, config=config, uts_version=os.uname().version, running_release=os.uname().release)

    def fedora_release(self, fedora: str) -> str:
        """A Fedora-shaped release (6.18.44-200.fc40.x86_64) for the running kernel's upstream version:
        rpm versions cannot hold the '-' of a custom release such as 6.18.44-fc-v1147."""
        upstream = self.running_release.split("-")[0]
        return f"{upstream}-200.fc{fedora}.x86_64"


@dataclass
class Archives:
    root: Path
    key_id: str
    key_armored: str
    key_binary: Path
    ubuntu_release: str
    fedora_release: str
    fedora_version: str
    build_id: str
    ubuntu_pkg_version: str
    # Ubuntu 12.10's debug symbols as Launchpad publishes them (not in any apt archive)
    launchpad_ddeb: Path


# -- pieces ---------------------------------------------------------------------------------------

def _gpg_key(home: Path) -> str:
    home.mkdir(mode=0o700, parents=True)
    _run(["gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key", KEY_UID, "rsa3072",
          "sign", "never"])
    out = _run(["gpg", "--homedir", home, "--batch", "--with-colons", "--list-secret-keys"]).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
    return fpr


def _vmlinux(out: Path, build_id: str, work: Path) -> None:
    """A real ELF with DWARF and the given GNU build-id (what stap and elfutils check in a vmlinux)."""
    src = work / "vmlinux.c"
    src.write_text("/* stapdoctor test stand-in for a kernel's debug vmlinux */\n"
                   "int stapdoctor_kernel_stand_in(int x) { return x + 1; }\n")
    _run(["gcc", "-g", "-O0", "-nostdlib", "-static", "-Wl,-e,stapdoctor_kernel_stand_in",
          f"-Wl,--build-id=0x{build_id}", "-o", out, src])


def _headers_tree(dest: Path, ident: KernelIdentity, release: str, notes: bool) -> None:
    (dest / "include/generated").mkdir(parents=True)
    (dest / ".config").write_text(ident.config)
    (dest / "Makefile").write_text(f"# stand-in kernel Makefile for {release}\nVERSION = {release.split('.')[0]}\n")
    (dest / "Module.symvers").write_text("0x00000000\tstapdoctor_stand_in\tvmlinux\tEXPORT_SYMBOL\t\n")
    (dest / "include/generated/utsrelease.h").write_text(f'#define UTS_RELEASE "{release}"\n')
    (dest / "include/generated/utsversion.h").write_text(f'#define UTS_VERSION "{ident.uts_version}"\n')
    if notes:  # Fedora's kernel-devel ships the build-id notes as vmlinux.id
        (dest / "vmlinux.id").write_bytes(ident.notes)


def _deb(work: Path, name: str, version: str, files: dict[str, Path | bytes | str], *,
         links: dict[str, str] | None = None, description: str, section: str = "devel") -> Path:
    tree = work / f"deb-{name}"
    (tree / "DEBIAN").mkdir(parents=True)
    for dest, src in files.items():
        target = tree / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if dest.startswith("/usr/bin/"):
            target.write_text(src)
            target.chmod(0o755)
            continue
        if isinstance(src, Path):
            if src.is_dir():
                shutil.copytree(src, target, symlinks=True)
            else:
                shutil.copy2(src, target)
        elif isinstance(src, bytes):
            target.write_bytes(src)
        else:
            target.write_text(src)
    for dest, to in (links or {}).items():
        target = tree / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(to)
    (tree / "DEBIAN/control").write_text(textwrap.dedent(f"""\
        Package: {name}
        Version: {version}
        Architecture: amd64
        Maintainer: stapdoctor tests <tests@stapdoctor.invalid>
        Section: {section}
        Priority: optional
        Description: {description}
         Built by stapdoctor's test harness (tests/harness/archives.py) for the stand-in hosts.
        """))
    out = work / f"{name}_{version}_amd64.deb"
    _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, out])
    return out


def _reprepro(base: Path, key: str, codenames: list[str], components: tuple[str, ...], origin: str) -> None:
    (base / "conf").mkdir(parents=True)
    (base / "conf/distributions").write_text("".join(
        f"Origin: {origin}\nLabel: {origin}\nCodename: {c}\nArchitectures: amd64\n"
        f"Components: {' '.join(components)}\nSignWith: {key}\n\n" for c in codenames))


def _ddebs_archive(base: Path, gnupg: Path, key: str, suites: dict[str, list[Path]]) -> None:
    """An archive shaped like ddebs.ubuntu.com: .ddeb files in the pool, listed in the ordinary
    binary-amd64/Packages indices, Release signed (InRelease, Release.gpg). Debian's reprepro has no
    .ddeb support (it would store them as .deb), so the indices are written here."""
    for suite, files in suites.items():
        dist = base / "dists" / suite
        entries = []
        for f in files:
            name = _run(["dpkg-deb", "-f", f, "Package"]).stdout.strip()
            pool = base / "pool/main" / name[:1] / name
            pool.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, pool / f.name)
            data = f.read_bytes()
            entries.append(_run(["dpkg-deb", "-f", f]).stdout.rstrip("\n") + "\n"
                           + f"Filename: {(pool / f.name).relative_to(base)}\nSize: {len(data)}\n"
                           + f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")
        indices = []
        for comp in UBUNTU_COMPONENTS:
            d = dist / comp / "binary-amd64"
            d.mkdir(parents=True)
            text = "\n".join(entries) if comp == "main" else ""
            (d / "Packages").write_text(text)
            (d / "Packages.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
            indices += [d / "Packages", d / "Packages.gz"]
        lines = [f"Origin: Ubuntu\nLabel: Ubuntu\nSuite: {suite}\nCodename: {suite}\n"
                 f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\nArchitectures: amd64\n"
                 f"Components: {' '.join(UBUNTU_COMPONENTS)}\nDescription: stand-in for ddebs.ubuntu.com\n"]
        for algo, field in (("md5", "MD5Sum"), ("sha256", "SHA256")):
            lines.append(f"{field}:\n" + "".join(
                f" {hashlib.new(algo, i.read_bytes()).hexdigest()} {i.stat().st_size:>8} {i.relative_to(dist)}\n"
                for i in indices))
        (dist / "Release").write_text("".join(lines))
        gpg = ["gpg", "--homedir", gnupg, "--batch", "--yes", "--local-user", key]
        _run(gpg + ["--clearsign", "--output", dist / "InRelease", dist / "Release"])
        _run(gpg + ["--armor", "--detach-sign", "--output", dist / "Release.gpg", dist / "Release"])


def _reprepro_cmd(base: Path, gnupg: Path, *args) -> None:
    _run(["reprepro", "-b", base, *args], env=dict(os.environ, GNUPGHOME=str(gnupg)))


SPEC = """\
%global debug_package %{{nil}}
%global __os_install_post %{{nil}}
%global _build_id_links none
Name: kernel
Version: {version}
Release: {release}
Summary: stand-in Fedora kernel packages for stapdoctor's tests
License: GPL-2.0-only
AutoReqProv: no
ExclusiveArch: x86_64

%description
Stand-in for Fedora's kernel packages, built by stapdoctor's test harness.

%package core
Summary: stand-in kernel-core (owns /lib/modules/R and its build link)
%description core
Stand-in kernel-core.

%package devel
Summary: stand-in kernel-devel (headers, config, Module.symvers, vmlinux.id)
%description devel
Stand-in kernel-devel.

%package debuginfo-common-x86_64
Summary: stand-in kernel-debuginfo-common
%description debuginfo-common-x86_64
Stand-in kernel-debuginfo-common-x86_64.

%package debuginfo
Summary: stand-in kernel-debuginfo (the vmlinux with DWARF)
Requires: kernel-debuginfo-common-x86_64 = %{{version}}-%{{release}}
%description debuginfo
Stand-in kernel-debuginfo.

%install
cp -a {payload}/. %{{buildroot}}/

%files
%doc /usr/share/doc/kernel/README

%files core
/lib/modules/{R}

%files devel
/usr/src/kernels/{R}

%files debuginfo-common-x86_64
/usr/src/debug/kernel-{version}

%files debuginfo
/usr/lib/debug/lib/modules/{R}/vmlinux
"""

SYSTEMTAP_SPEC = """\
%global debug_package %{{nil}}
Name: systemtap
Version: {version}
Release: 1.fc{fedora}
Summary: stand-in systemtap (stap answers -V)
License: GPL-2.0-or-later
AutoReqProv: no
BuildArch: x86_64

%description
Stand-in for Fedora's systemtap, built by stapdoctor's test harness.

%install
mkdir -p %{{buildroot}}/usr/bin
cp {payload}/stap {payload}/staprun %{{buildroot}}/usr/bin/

%files
%attr(0755,root,root) /usr/bin/stap
%attr(0750,root,root) /usr/bin/staprun
"""

# The stand-in's dnf-plugins-core files come from Debian's package (dpkg); this rpm records it in the
# rpmdb so dnf, like on Fedora, finds the debuginfo-install plugin's package in the repository.
PLUGINS_SPEC = """\
Name: dnf-plugins-core
Version: 4.3.1
Release: 1.fc{fedora}
Summary: stand-in dnf-plugins-core (the files are Debian's dnf-plugins-core in the stand-in host)
License: GPL-2.0-or-later
BuildArch: noarch

%description
Stand-in for Fedora's dnf-plugins-core, built by stapdoctor's test harness.

%install
mkdir -p %{{buildroot}}/usr/share/doc/dnf-plugins-core
echo 'files provided by the Debian package of the same name' > %{{buildroot}}/usr/share/doc/dnf-plugins-core/README.stapdoctor

%files
/usr/share/doc/dnf-plugins-core/README.stapdoctor
"""

STAP_V = """#!/bin/sh
# stand-in for systemtap's stap (tests/harness/archives.py): answers -V like the real one
case "$1" in -V|--version) cat >&2 <<'EOV'
Systemtap translator/driver (version {version}/0.191, rpm {version}-1.fc{fedora})
Copyright (C) 2005-2024 Red Hat, Inc. and others
This is free software; see the source for copying conditions.
tested kernel versions: 4.14 ... 6.18
enabled features: AVAHI BOOST_STRING_REF DYNINST BPF JAVA PYTHON3 LIBRPM LIBSQLITE3 LIBVIRT LIBXML2 NLS NSS READLINE MONITOR
EOV
exit 0 ;; esac
echo "stap (test stand-in): only -V works" >&2; exit 1
"""


def _rpms(work: Path, ident: KernelIdentity, fedora: str, vmlinux: Path) -> list[Path]:
    R = ident.fedora_release(fedora)
    version, rest = R.split("-", 1)
    release = rest.rsplit(".", 1)[0]  # 200.fc40
    payload = work / "rpm-payload"
    (payload / "usr/share/doc/kernel").mkdir(parents=True)
    (payload / "usr/share/doc/kernel/README").write_text("stand-in kernel metapackage\n")
    mods = payload / "lib/modules" / R
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text("")
    (mods / "build").symlink_to(f"/usr/src/kernels/{R}")
    _headers_tree(payload / "usr/src/kernels" / R, ident, R, notes=True)
    (payload / f"usr/src/debug/kernel-{version}").mkdir(parents=True)
    (payload / f"usr/src/debug/kernel-{version}/README").write_text("stand-in debug sources\n")
    (payload / f"usr/lib/debug/lib/modules/{R}").mkdir(parents=True)
    shutil.copy2(vmlinux, payload / f"usr/lib/debug/lib/modules/{R}/vmlinux")
    top = work / "rpmbuild"
    for d in ("SPECS", "RPMS", "BUILD", "BUILDROOT", "SOURCES", "SRPMS"):
        (top / d).mkdir(parents=True, exist_ok=True)
    spec = top / "SPECS/kernel.spec"
    spec.write_text(SPEC.format(version=version, release=release, R=R, payload=payload))
    stap_payload = work / "stap-payload"
    stap_payload.mkdir()
    (stap_payload / "stap").write_text(STAP_V.format(version="5.1", fedora=fedora))
    (stap_payload / "staprun").write_text("#!/bin/sh\necho 'staprun (test stand-in)' >&2\nexit 1\n")
    stap_spec = top / "SPECS/systemtap.spec"
    stap_spec.write_text(SYSTEMTAP_SPEC.format(version="5.1", fedora=fedora, payload=stap_payload))
    plugins_spec = top / "SPECS/dnf-plugins-core.spec"
    plugins_spec.write_text(PLUGINS_SPEC.format(fedora=fedora))
    for s in (spec, stap_spec, plugins_spec):
        _run(["rpmbuild", "--define", f"_topdir {top}", "--define", "_binary_payload w2.gzdio",
              "--nodeps", "-bb", s])
    return sorted((top / "RPMS").rglob("*.rpm"))


def _build(dest: Path, ident: KernelIdentity, fedora: str) -> Archives:
    work = dest / "work"
    work.mkdir(parents=True)
    gnupg = dest / "gnupg"
    fpr = _gpg_key(gnupg)
    armored = _run(["gpg", "--homedir", gnupg, "--armor", "--export", fpr]).stdout
    binary = dest / "key.gpg"
    _run(["gpg", "--homedir", gnupg, "--output", binary, "--export", fpr])
    www = dest / "www"
    www.mkdir()
    build_id = ident.build_id
    vmlinux = work / "vmlinux"
    _vmlinux(vmlinux, build_id, work)

    # Ubuntu: linux-headers-R and ubuntu-dbgsym-keyring in the archive, the -dbgsym .ddeb in ddebs.
    R = ident.running_release
    version = f"{R.split('-')[0]}-1.1"  # Ubuntu's <upstream>-<abi>.<upload> (6.18.44-1.1)
    hdr = work / "ubuntu-headers"
    _headers_tree(hdr, ident, R, notes=False)
    debs = [
        _deb(work, f"linux-headers-{R}", version, {f"/usr/src/linux-headers-{R}": hdr},
             links={f"/lib/modules/{R}/build": f"/usr/src/linux-headers-{R}"},
             description=f"Linux kernel headers for version {R} (test stand-in)", section="kernel"),
        _deb(work, "ubuntu-dbgsym-keyring", "2021.03.26",
             {"/usr/share/keyrings/ubuntu-dbgsym-keyring.gpg": binary.read_bytes()},
             description="GnuPG keys for the Ubuntu Debug Symbol Archive (test key)", section="misc"),
        _deb(work, "systemtap", "5.0.2-1ubuntu1",
             {"/usr/bin/stap": STAP_V.format(version="5.0.2", fedora="").replace(
                 "rpm 5.0.2-1.fc", "Ubuntu 5.0.2-1ubuntu1"),
              "/usr/bin/staprun": "#!/bin/sh\necho 'staprun (test stand-in)' >&2\nexit 1\n"},
             description="instrumentation system for Linux (test stand-in: stap answers -V)"),
    ]
    ddeb_deb = _deb(work, f"linux-image-unsigned-{R}-dbgsym", version,
                    {f"/usr/lib/debug/boot/vmlinux-{R}": vmlinux},
                    description=f"Linux kernel debug image for version {R} (test stand-in)", section="devel")
    ddeb = ddeb_deb.with_suffix(".ddeb")
    ddeb_deb.rename(ddeb)
    # 12.10 and older name it linux-image-R-dbgsym (no -unsigned); Launchpad has it, ddebs no longer.
    lp_deb = _deb(work, f"linux-image-{R}-dbgsym", version, {f"/usr/lib/debug/boot/vmlinux-{R}": vmlinux},
                  description=f"Linux kernel debug image for version {R} (test stand-in)", section="devel")
    (dest / "launchpad").mkdir()
    lp_ddeb = dest / "launchpad" / lp_deb.with_suffix(".ddeb").name
    shutil.move(lp_deb, lp_ddeb)
    ubuntu = www / "ubuntu"
    _reprepro(ubuntu, fpr, ["noble"], ("main",), origin="Ubuntu")
    for d in debs:
        _reprepro_cmd(ubuntu, gnupg, "includedeb", "noble", d)
    _ddebs_archive(www / "ddebs", gnupg, fpr, {"noble": [ddeb], "noble-updates": [], "noble-proposed": []})
    # old-releases: what a 12.10 host's rewritten sources.list reads (headers, systemtap)
    old = www / "old-releases/ubuntu"
    _reprepro(old, fpr, ["quantal", "quantal-updates", "quantal-security"], ("main", "restricted"), origin="Ubuntu")
    for d in debs:
        if not d.name.startswith("ubuntu-dbgsym-keyring"):
            _reprepro_cmd(old, gnupg, "includedeb", "quantal", d)
    for suite in ("quantal-updates", "quantal-security"):  # empty, but signed: apt reads all three
        _reprepro_cmd(old, gnupg, "export", suite)
    for base in (ubuntu, old):
        for d in ("conf", "db"):
            shutil.rmtree(base / d, ignore_errors=True)

    # Fedora: signed rpms in the archive's layout.
    rpms = _rpms(work, ident, fedora, vmlinux)
    _run(["rpmsign", "--define", f"_gpg_name {fpr}", "--define", f"_gpg_path {gnupg}", "--define",
          f"__gpg {shutil.which('gpg') or '/usr/bin/gpg'}", "--addsign", *rpms], stdin=subprocess.DEVNULL)
    fed = www / "fedora/linux"
    os_dir = fed / f"releases/{fedora}/Everything/x86_64/os"
    debug_dir = fed / f"releases/{fedora}/Everything/x86_64/debug/tree"
    upd = fed / f"updates/{fedora}/Everything/x86_64"
    upd_debug = fed / f"updates/{fedora}/Everything/x86_64/debug"
    for d in (os_dir, debug_dir, upd, upd_debug):
        (d / "Packages/k").mkdir(parents=True)
    for rpm in rpms:
        to = debug_dir if "-debuginfo" in rpm.name else os_dir
        (to / "Packages" / rpm.name[0]).mkdir(exist_ok=True)
        shutil.copy2(rpm, to / "Packages" / rpm.name[0] / rpm.name)
    for d in (os_dir, debug_dir, upd_debug, upd):
        _run(["createrepo_c", "-q", "--excludes", "debug/*", d] if d == upd else ["createrepo_c", "-q", d])
    (www / "RPM-GPG-KEY-stapdoctor-test").write_text(armored)
    shutil.rmtree(work)
    info = dict(key_id=fpr, ubuntu_release=R, fedora_release=ident.fedora_release(fedora), fedora_version=fedora,
                build_id=build_id, ubuntu_pkg_version=version)
    (dest / "archives.json").write_text(json.dumps(dict(info, launchpad_ddeb=lp_ddeb.name), indent=1))
    return Archives(root=www, key_armored=armored, key_binary=binary, launchpad_ddeb=lp_ddeb, **info)


def cache_key(ident: KernelIdentity, fedora: str) -> str:
    h = hashlib.sha256()
    for part in (_FORMAT, fedora, ident.running_release, ident.uts_version, ident.notes.hex(),
                 hashlib.sha256(ident.config.encode()).hexdigest(), Path(__file__).read_text()):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def build_archives(ident: KernelIdentity | None = None, fedora: str = "40", cache_dir: Path = CACHE_DIR) -> Archives:
    """The signed archives for this kernel identity, built once and cached by content."""
    ident = ident or KernelIdentity.of_this_machine()
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / cache_key(ident, fedora)
    marker = dest / ".stapdoctor-archives-ok"
    with open(cache_dir / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(dest, ignore_errors=True)
            started = time.monotonic()
            _build(dest, ident, fedora)
            marker.write_text(json.dumps({"seconds": round(time.monotonic() - started, 1)}))
    info = json.loads((dest / "archives.json").read_text())
    info["launchpad_ddeb"] = dest / "launchpad" / info["launchpad_ddeb"]
    return Archives(root=dest / "www", key_armored=(dest / "www/RPM-GPG-KEY-stapdoctor-test").read_text(),
                    key_binary=dest / "key.gpg", **info)


# -- serving --------------------------------------------------------------------------------------

class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):  # requests are recorded, not printed
        self.server.requests.append(self.path)  # type: ignore[attr-defined]


@contextlib.contextmanager
def serve(root: Path, address: str, port: int = 8080) -> Iterator[str]:
    """Serve ``root`` read-only over HTTP on address:port (the test bridge); yields the base URL.
    The server's ``requests`` list (paths) is reachable as ``serve.last.requests``."""
    server = http.server.ThreadingHTTPServer((address, port), partial(_Handler, directory=str(root)))
    server.requests = []  # type: ignore[attr-defined]
    serve.last = server  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
