"""Ubuntu and Fedora stand-in test hosts: Debian roots that Ansible's facts see as Ubuntu or Fedora.

Why: no Ubuntu or Fedora mirror is reachable from the test machines, but their package managers are
(Debian packages apt, dnf 4 with python3-dnf and dnf-plugins-core, rpm), and Debian 11 still has
Python 2.7. Each stand-in is a cached debootstrap root (see :func:`testhosts.base_root`) plus an
overlay of the distribution's identity files (os-release, lsb-release, fedora-release), so the roles'
Ubuntu and Red Hat task files run for real through apt, dnf and Python 2.7 against the signed local
archives of :mod:`stapdoctor.testing.archives`.
"""

from __future__ import annotations

from pathlib import Path

from .testhosts import BASE_PACKAGES, HostSpec, base_root

# Fedora stand-in: the bookworm base plus rpm and dnf 4 (with the Python bindings Ansible's dnf module
# imports, and dnf-plugins-core for `dnf debuginfo-install`).
FEDORA_PACKAGES = BASE_PACKAGES + ("rpm", "dnf", "python3-dnf", "dnf-plugins-core")
# Ubuntu 12.10 stand-in: Debian 11 with Python 2.7 only (no python3 at all), like the seed's host.
PY27_SUITE = "bullseye"
PY27_PACKAGES = ("openssh-server", "python2.7", "make", "gcc", "libc6-dev", "binutils", "apt-utils")


def fedora_base() -> Path:
    return base_root(packages=FEDORA_PACKAGES)


def py27_base() -> Path:
    return base_root(suite=PY27_SUITE, packages=PY27_PACKAGES)


def _os_release(**fields: str) -> str:
    return "".join(f'{k}="{v}"\n' for k, v in fields.items())


def ubuntu_identity(version: str, codename: str, pretty: str) -> dict[str, str]:
    """os-release and lsb-release as the Ubuntu release ships them (Ansible reads both)."""
    os_release = _os_release(NAME="Ubuntu", VERSION=f"{pretty.split(' ', 1)[1]}", ID="ubuntu", ID_LIKE="debian",
                             PRETTY_NAME=pretty, VERSION_ID=version, VERSION_CODENAME=codename,
                             UBUNTU_CODENAME=codename, HOME_URL="https://www.ubuntu.com/")
    lsb = (f"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE={version}\nDISTRIB_CODENAME={codename}\n"
           f'DISTRIB_DESCRIPTION="{pretty}"\n')
    return {"/etc/os-release": os_release, "/usr/lib/os-release": os_release, "/etc/lsb-release": lsb,
            "/etc/debian_version": f"{codename}/sid\n"}


def fedora_identity(version: str) -> dict[str, str]:
    """Fedora's identity files (fedora-release-common): os-release, fedora-release, redhat-release."""
    pretty = f"Fedora Linux {version} (Server Edition)"
    os_release = _os_release(NAME="Fedora Linux", VERSION=f"{version} (Server Edition)", ID="fedora",
                             VERSION_ID=version, PLATFORM_ID=f"platform:f{version}", PRETTY_NAME=pretty,
                             CPE_NAME=f"cpe:/o:fedoraproject:fedora:{version}", VARIANT_ID="server")
    line = f"Fedora release {version} ({'Forty' if version == '40' else 'Fedora'})\n"
    return {"/etc/os-release": os_release, "/usr/lib/os-release": os_release, "/etc/fedora-release": line,
            "/etc/redhat-release": line, "/etc/system-release": line,
            # dnf reads $releasever from the rpmdb's system-release(releasever) provide; the stand-in's
            # rpmdb is empty, so it gets it the documented other way.
            "/etc/dnf/vars/releasever": f"{version}\n"}


def spec(name: str, base: Path | None, files: dict, *, python: str = "/usr/bin/python3",
         remove: tuple[str, ...] = (), apt_proxy: bool = True) -> HostSpec:
    return HostSpec(name=name, base=base, files=files, python=python, remove=remove, apt_proxy=apt_proxy)
