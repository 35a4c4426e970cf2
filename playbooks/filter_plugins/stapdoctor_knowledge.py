"""Ansible filters that read stapdoctor's knowledge tables on the controller.

Why: the doctor's remedies and the playbooks' choices (package names, repositories, keys, the
systemtap ref to build) must come from one place, ``stapdoctor.doctor.knowledge``; the roles call
these filters instead of keeping their own copies. The controller needs stapdoctor installed (the same
virtualenv as ansible-core); the targets need nothing.
"""

from __future__ import annotations

import base64
import re

from ansible.errors import AnsibleFilterError

# ansible_distribution (facts) -> os-release ID, which the knowledge tables use.
_DISTRO_IDS = {
    "redhat": "rhel", "centos": "centos", "fedora": "fedora", "debian": "debian", "ubuntu": "ubuntu",
    "rocky": "rocky", "almalinux": "almalinux", "oraclelinux": "ol",
}
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i386": "i386", "i686": "i386", "ppc64le": "ppc64el",
         "s390x": "s390x"}
_RELEASE_RE = re.compile(r"^[A-Za-z0-9._+~-]+$")


def _knowledge():
    try:
        from stapdoctor.doctor import knowledge
    except ImportError as err:  # pragma: no cover - depends on the controller's install
        raise AnsibleFilterError(
            "stapdoctor is not importable on the controller: run ansible-playbook from the virtualenv "
            f"where stapdoctor is installed ({err})") from err
    return knowledge


def _check_release(kernel_release: str) -> str:
    if not isinstance(kernel_release, str) or not _RELEASE_RE.match(kernel_release):
        raise AnsibleFilterError(f"kernel_release {kernel_release!r} is not a kernel release string")
    return kernel_release


def distro_id(facts: dict) -> str:
    """os-release ID for a host's facts (ansible_distribution 'RedHat' -> 'rhel')."""
    name = str(facts.get("distribution", facts.get("ansible_distribution", ""))).lower().replace(" ", "")
    return _DISTRO_IDS.get(name, name)


def deb_arch(facts: dict) -> str:
    machine = str(facts.get("architecture", facts.get("ansible_architecture", "x86_64")))
    return _ARCH.get(machine, machine)


def stapdoctor_platform(facts: dict, kernel_release: str, kernel_version: str | None = None) -> dict:
    """knowledge.platform_packages() for a host: headers, debuginfo packages, method, repos, build deps."""
    k = _knowledge()
    version = str(facts.get("distribution_version", facts.get("ansible_distribution_version", "")))
    try:
        return k.platform_packages(distro_id(facts), version, _check_release(kernel_release),
                                   arch=deb_arch(facts), kernel_version=kernel_version or None)
    except LookupError as err:
        raise AnsibleFilterError(f"stapdoctor knowledge: {err}") from err


def stapdoctor_systemtap_ref(kernel_version: str, gcc_version: str | None = None) -> str:
    """The systemtap release tag to build for a kernel (upstream version) and compiler."""
    try:
        return _knowledge().choose_systemtap_ref(str(kernel_version), gcc_version or None)
    except (LookupError, OSError) as err:
        raise AnsibleFilterError(f"stapdoctor knowledge: cannot choose a systemtap ref: {err}") from err


def stapdoctor_systemtap_build(kernel_version: str, gcc_version: str | None = None, tags=None) -> dict:
    """{'ref', 'why'}: the release to build, among the tags the repository has (``tags``: a list, or the
    {tag: commit} of stapdoctor_git_tags; None when the repository was not asked)."""
    try:
        ref, why = _knowledge().choose_systemtap_build(str(kernel_version), gcc_version or None,
                                                       None if tags is None else list(tags))
    except (LookupError, OSError) as err:
        raise AnsibleFilterError(f"stapdoctor knowledge: cannot choose a systemtap ref: {err}") from err
    return {"ref": ref, "why": why}


def stapdoctor_git_refs(ls_remote_output: str) -> dict:
    """`git ls-remote --tags --heads URL` output -> {tag or branch: commit} (annotated tags peeled)."""
    refs = {}
    for line in (ls_remote_output or "").splitlines():
        m = re.fullmatch(r"([0-9a-f]{40,64})\trefs/heads/([A-Za-z0-9._/+-]+)", line.strip())
        if m:
            refs[m.group(2)] = m.group(1)
    refs.update(_knowledge().parse_ls_remote_tags(ls_remote_output))
    return refs


def stapdoctor_stap_covers(stap_version: str, kernel_version: str) -> bool | None:
    """Does this stap version's tested kernel range cover the kernel? None when unknown."""
    if not stap_version:
        return None
    try:
        return _knowledge().stap_covers_kernel(str(stap_version), str(kernel_version))
    except (LookupError, OSError):
        return None


def stapdoctor_upstream_version(proc_version: str, kernel_release: str = "", version_signature: str = "") -> str:
    """The upstream kernel version (Debian's 6.1.0-56-amd64 is 6.1.192; Ubuntu's 3.5.0-17-generic is 3.5.5).

    stap's tested ranges need it; the doctor's parser decides, from /proc/version_signature (Ubuntu),
    /proc/version (Debian) or, failing both, the numeric part of the release.
    """
    try:
        from stapdoctor.doctor.parsers import upstream_kernel_version
    except ImportError as err:  # pragma: no cover
        raise AnsibleFilterError(f"stapdoctor is not importable on the controller ({err})") from err
    return upstream_kernel_version(kernel_release or "", proc_version or None, version_signature or None)[0]


def stapdoctor_build_id_from_notes(notes_b64: str) -> str | None:
    """The GNU build-id in /sys/kernel/notes (as slurped, base64) - for debuginfod look-ups."""
    data = base64.b64decode(notes_b64 or "")
    off = 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = (int.from_bytes(data[off + i:off + i + 4], "little") for i in (0, 4, 8))
        name_end = off + 12 + ((namesz + 3) & ~3)
        desc = data[name_end:name_end + descsz]
        if ntype == 3 and data[off + 12:off + 12 + namesz].rstrip(b"\0") == b"GNU":
            return desc.hex()
        off = name_end + ((descsz + 3) & ~3)
    return None


def stapdoctor_stap_version(stap_v_output: str) -> str | None:
    """'Systemtap translator/driver (version 5.4/0.192, release-5.4)' -> '5.4'."""
    m = re.search(r"version (\d+(?:\.\d+)+)", stap_v_output or "")
    return m.group(1) if m else None


def stapdoctor_prefix_archive_problems(path: str, version: str, limit: int = 2 << 30) -> list:
    """What is wrong with a packed systemtap prefix before a host unpacks it as root: every member must be
    a regular file, directory or relative symlink inside ``VERSION/`` (no absolute or '..' names, no
    devices, no hard links, no link leading out), the whole at most ``limit`` bytes. Read on the
    controller as a listing only; nothing is extracted there."""
    import posixpath
    import tarfile

    problems = []
    total = 0
    try:
        with tarfile.open(path, "r:gz") as tf:
            for m in tf:
                name = m.name.rstrip("/")
                parts = name.split("/")
                if name.startswith("/") or ".." in parts or parts[0] != version:
                    problems.append(f"{m.name!r}: outside {version}/")
                elif not (m.isfile() or m.isdir() or m.issym()):
                    problems.append(f"{m.name!r}: not a file, directory or symlink")
                elif m.issym():
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
                    if m.linkname.startswith("/") or target.split("/")[0] != version:
                        problems.append(f"{m.name!r}: link to {m.linkname!r} leads out of {version}/")
                total += max(m.size, 0)
                if total > limit:
                    problems.append(f"more than {limit} bytes unpacked")
                    break
                if len(problems) >= 10:
                    break
    except (OSError, tarfile.TarError, EOFError) as err:
        problems.append(f"unreadable archive: {err}")
    return problems


class FilterModule:
    def filters(self):
        return {
            "stapdoctor_platform": stapdoctor_platform,
            "stapdoctor_systemtap_ref": stapdoctor_systemtap_ref,
            "stapdoctor_stap_covers": stapdoctor_stap_covers,
            "stapdoctor_systemtap_build": stapdoctor_systemtap_build,
            "stapdoctor_git_refs": stapdoctor_git_refs,
            "stapdoctor_prefix_archive_problems": stapdoctor_prefix_archive_problems,
            "stapdoctor_upstream_version": stapdoctor_upstream_version,
            "stapdoctor_build_id_from_notes": stapdoctor_build_id_from_notes,
            "stapdoctor_stap_version": stapdoctor_stap_version,
            "stapdoctor_distro_id": distro_id,
        }
