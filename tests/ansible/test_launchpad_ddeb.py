"""The Launchpad .ddeb fallback (roles/debuginfo/tasks/launchpad.yml, Ubuntu EOL series such as 12.10)
verifies what it downloads: the URL and SHA-256 come from Launchpad's API, a mismatching file or an
http:// link is refused before anything reaches the host.

Launchpad is not reachable from CI: a local HTTPS server (its own CA, trusted through SSL_CERT_FILE)
answers the two API calls the role makes, shaped like api.launchpad.net/devel's answers, and serves a
real .deb built with dpkg-deb. The host is a real Debian 12 test host over SSH; its facts are Ubuntu
12.10's (the role decides from facts), set by a test-only module.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import ssl
import subprocess
import threading
import urllib.parse
from pathlib import Path

import pytest

from stapdoctor.testing.ansiblerun import PLAYBOOKS, VENV_BIN
from stapdoctor.testing.testhosts import bring_up_hosts

pytestmark = pytest.mark.ansible

R, VERSION = "3.5.0-17-generic", "3.5.0-17.28"
PKG = f"linux-image-{R}-dbgsym"
DDEB = f"{PKG}_{VERSION}_amd64.ddeb"

FACTS_MODULE = '''#!/usr/bin/python3
from ansible.module_utils.basic import AnsibleModule
m = AnsibleModule(argument_spec={"facts": {"type": "dict", "required": True}})
m.exit_json(changed=False, ansible_facts=m.params["facts"])
'''
QUANTAL = {"distribution": "Ubuntu", "distribution_version": "12.10", "distribution_release": "quantal",
           "os_family": "Debian", "architecture": "x86_64", "kernel": R}

PLAY = """
- hosts: target
  gather_facts: false
  tasks:
    - name: Ubuntu 12.10's facts
      fake_facts:
        facts: {facts}
    - name: The Launchpad fallback
      ansible.builtin.include_tasks: {tasks}
"""


def _cert(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake launchpad")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem, key_pem = tmp / "cert.pem", tmp / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert_pem, key_pem


def _ddeb(tmp: Path) -> bytes:
    root = tmp / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {PKG}\nVersion: {VERSION}\nArchitecture: all\nMaintainer: stapdoctor tests <t@example.org>\n"
        "Description: test stand-in for a Launchpad .ddeb\n")
    (root / "usr/lib/debug/boot").mkdir(parents=True)
    (root / f"usr/lib/debug/boot/vmlinux-{R}").write_text("not really DWARF\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(tmp / DDEB)], check=True,
                   capture_output=True)
    return (tmp / DDEB).read_bytes()


class FakeLaunchpad:
    """api.launchpad.net/devel's getPublishedBinaries and binaryFileUrls(include_meta), and the file."""

    def __init__(self, tmp: Path):
        self.ddeb = _ddeb(tmp)
        self.published_sha256 = hashlib.sha256(self.ddeb).hexdigest()
        self.scheme = "https"
        self.requests: list[str] = []
        lp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                lp.requests.append(self.path)
                base = f"https://127.0.0.1:{lp.port}"
                if self.path.startswith("/devel/ubuntu/+archive/primary?ws.op=getPublishedBinaries"):
                    q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                    ok = q.get("binary_name") == [PKG] and q.get("version") == [VERSION] and \
                        q.get("exact_match") == ["true"] and \
                        q.get("distro_arch_series") == [f"{base}/devel/ubuntu/quantal/amd64"]
                    body = json.dumps({"total_size": 1 if ok else 0, "start": 0, "entries": [
                        {"status": "Published", "binary_package_name": PKG, "binary_package_version": VERSION,
                         "self_link": f"{base}/devel/ubuntu/+archive/primary/+binarypub/4242"}] if ok else []})
                elif self.path == "/devel/ubuntu/+archive/primary/+binarypub/4242?ws.op=binaryFileUrls&include_meta=true":
                    url = f"{lp.scheme}://127.0.0.1:{lp.port}/ubuntu/+archive/primary/+files/{DDEB}"
                    body = json.dumps([{"url": url, "size": len(lp.ddeb), "sha1": hashlib.sha1(lp.ddeb).hexdigest(),
                                        "sha256": lp.published_sha256}])
                elif self.path == f"/ubuntu/+archive/primary/+files/{DDEB}":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(lp.ddeb)))
                    self.end_headers()
                    self.wfile.write(lp.ddeb)
                    return
                else:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.cert, key = _cert(tmp)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def lp_env(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the Ansible tier needs root (mounts, network namespaces); CI runs as root")
    work = tmp_path_factory.mktemp("launchpad")
    lp = FakeLaunchpad(work)
    (work / "library").mkdir()
    (work / "library/fake_facts.py").write_text(FACTS_MODULE)
    (work / "play.yml").write_text(PLAY.format(facts=json.dumps(QUANTAL),
                                               tasks=PLAYBOOKS / "roles/debuginfo/tasks/launchpad.yml"))
    with bring_up_hosts(1, name_prefix="lp") as fl:
        h = fl.hosts[0]
        inv = {"all": {"hosts": {"target": dict(fl.ansible_host_vars()[h.name], kernel_release=R,
                                                debuginfo_kernel_package_version=VERSION,
                                                debuginfo_lock_timeout=120,
                                                debuginfo_launchpad_api=f"https://127.0.0.1:{lp.port}/devel"),
                                 "localhost": {"ansible_connection": "local",
                                               "ansible_python_interpreter": str(VENV_BIN / "python")}}}}
        (work / "inventory.yml").write_text(json.dumps(inv))
        yield fl, h, lp, work
    lp.server.shutdown()


def play(work: Path, cache: Path, cert: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_LIBRARY=str(work / "library"),
               ANSIBLE_NOCOLOR="1", HOME=str(work), SSL_CERT_FILE=str(cert),
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(work / "inventory.yml"), str(work / "play.yml"),
                           "-e", json.dumps({"debuginfo_controller_cache": str(cache)})],
                          capture_output=True, text=True, env=env, timeout=600)


def installed(fl, h) -> bool:
    q = fl.ssh(h, "dpkg-query", "-W", "-f", "${Status}", PKG, check=False)
    return q.stdout == "install ok installed"


def test_a_file_that_does_not_match_the_published_sha256_is_refused(lp_env):
    fl, h, lp, work = lp_env
    lp.published_sha256 = hashlib.sha256(b"another file").hexdigest()
    try:
        p = play(work, work / "cache-bad", lp.cert)
    finally:
        lp.published_sha256 = hashlib.sha256(lp.ddeb).hexdigest()
    assert p.returncode != 0, p.stdout[-3000:]
    assert "did not match" in p.stdout, p.stdout[-3000:]
    assert not installed(fl, h)
    assert not list((work / "cache-bad").glob("*.ddeb"))
    assert f"/ubuntu/+archive/primary/+files/{DDEB}" in lp.requests  # it did download, then refused


def test_an_http_link_is_refused_before_downloading(lp_env):
    fl, h, lp, work = lp_env
    lp.scheme, before = "http", len(lp.requests)
    try:
        p = play(work, work / "cache-http", lp.cert)
    finally:
        lp.scheme = "https"
    assert p.returncode != 0
    assert "must come over https with a published SHA-256" in p.stdout, p.stdout[-3000:]
    assert not any("/+files/" in r for r in lp.requests[before:])
    assert not installed(fl, h)


def test_a_verified_ddeb_is_installed(lp_env):
    fl, h, lp, work = lp_env
    p = play(work, work / "cache", lp.cert)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert installed(fl, h)
    assert fl.ssh(h, "test", "-s", f"/usr/lib/debug/boot/vmlinux-{R}").returncode == 0
    assert (work / "cache" / DDEB).read_bytes() == lp.ddeb
