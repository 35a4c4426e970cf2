"""debuginfod asked for real, as stap-prep does (issue 14, item 7): the real `debuginfod-find` client (Debian
package debuginfod) against a debuginfod-protocol server on loopback (GET /buildid/ID/debuginfo), for the
running kernel's build-id read from this machine's /sys/kernel/notes."""
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

import hosts

from stapdoctor.doctor import checks, elfinfo, hostfacts, snapshot


def running_build_id():
    try:
        return elfinfo.build_id_from_notes(open("/sys/kernel/notes", "rb").read())
    except OSError:
        return None


@pytest.fixture
def server(tmp_path):
    """A loopback debuginfod that holds one real ELF with DWARF, under the build-id it is asked for."""
    elf, _, _ = hosts.build_elf(tmp_path / "elf")
    payload = elf.read_bytes()
    served = {}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            parts = self.path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "buildid" and parts[2] == "debuginfo" and parts[1] in served:
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            else:
                self.send_error(404)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", served
    srv.shutdown()
    srv.server_close()


def env_for(url, tmp_path):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return env | {"DEBUGINFOD_URLS": url, "DEBUGINFOD_CACHE_PATH": str(tmp_path / "cache"), "no_proxy": "127.0.0.1"}


def check_live(env, *args):
    r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--json", *args], capture_output=True,
                       text=True, env=env, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return {f["id"]: f for f in json.loads(r.stdout)["findings"]}["debuginfo.vmlinux"]


@pytest.fixture
def client():
    if shutil.which("debuginfod-find") is None:
        pytest.fail("debuginfod-find is missing: apt-get install debuginfod (tests/apt-packages.txt)")
    bid = running_build_id()
    if bid is None:
        pytest.skip("this kernel has no readable /sys/kernel/notes build-id")
    snap = snapshot.collect("/")
    if any(e.get("has_dwarf") for e in snap.elf.values()):
        pytest.skip("this machine has a local kernel vmlinux: debuginfod is not consulted")
    return bid


def test_server_has_the_kernel(client, server, tmp_path):
    url, served = server
    served[client] = True
    f = check_live(env_for(url, tmp_path), "--debuginfod")
    assert f["status"] == "pass" and f"build-id {client}" in f["evidence"] and url in f["evidence"]
    assert (tmp_path / "cache" / client / "debuginfo").exists()   # cached where stap's elfutils will look


def test_server_lacks_the_kernel(client, server, tmp_path):
    url, _ = server
    f = check_live(env_for(url, tmp_path), "--debuginfod")
    assert f["status"] == "fail" and "has no debuginfo" in f["evidence"]


def test_without_the_option_the_network_is_not_asked(client, server, tmp_path):
    url, served = server
    served[client] = True
    f = check_live(env_for(url, tmp_path))
    assert f["status"] == "warn" and "--debuginfod" in f["remedy"]
    assert not (tmp_path / "cache").exists()


def test_urls_files_are_read(host_root):
    root = host_root("debian-12-stap-4.8", extra_files={"etc/debuginfod/debian.urls": "https://debuginfod.debian.net\n"})
    snap = snapshot.collect(str(root))
    assert hostfacts.urls(snap) == ("https://debuginfod.debian.net", "/etc/debuginfod/*.urls")
    f = {x.id: x for x in checks.run_checks(snap)}["debuginfo.vmlinux"]
    assert f.status == "warn" and "debuginfod.debian.net" in f.evidence and "not set here" in f.evidence


def test_stap_report_facts_in_the_snapshot(host_root):
    root = host_root("fedora-41", extra_files={
        "sys/kernel/security/lsm": "lockdown,capability,yama,selinux,bpf,landlock",
        "sys/fs/selinux/enforce": "1", ".stapdoctor/systemtap-rc": "--ldd -DMAXSTRINGLEN=1024\n"})
    snap = snapshot.collect(str(root))
    assert snap.text("/sys/kernel/security/lsm").startswith("lockdown,capability")
    assert snap.text("/sys/fs/selinux/enforce") == "1"
    assert snap.files[hostfacts.RC_KEY]["text"] == "--ldd -DMAXSTRINGLEN=1024\n"
