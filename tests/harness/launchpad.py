"""A local HTTPS stand-in for Launchpad, for the debuginfo role's .ddeb fallback (roles/debuginfo/tasks/
launchpad.yml, Ubuntu end-of-life series such as 12.10).

Why: Launchpad is not reachable from CI, and the fallback's supply-chain checks (https only, the
published SHA-256) need a server that answers like it. This one answers the two API calls the role
makes, shaped like api.launchpad.net/devel's (``getPublishedBinaries`` on the primary archive, then
``binaryFileUrls`` with ``include_meta``), and serves the .ddeb. It listens on 127.0.0.1 (the role asks
from the controller) with its own CA certificate; the playbook run trusts it through SSL_CERT_FILE.
Tests change ``published_sha256`` or ``scheme`` to see the role refuse a bad answer.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
import json
import ssl
import threading
import urllib.parse
from pathlib import Path


def self_signed_cert(tmp: Path) -> tuple[Path, Path]:
    """A CA certificate for 127.0.0.1 and its key (PEM files in tmp)."""
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


class FakeLaunchpad:
    """Publishes one binary package (name, version) for one series/arch, as a .ddeb file.

    ``api`` is the API root to give the role (its ``debuginfo_launchpad_api``), ``cert`` the CA file
    for SSL_CERT_FILE, ``requests`` the paths asked for. Use as a context manager or call ``close``.
    """

    def __init__(self, tmp: Path, package: str, version: str, ddeb: bytes, *, series: str = "quantal",
                 arch: str = "amd64"):
        self.package, self.version, self.ddeb, self.series, self.arch = package, version, ddeb, series, arch
        self.filename = f"{package}_{version}_{arch}.ddeb"
        self.published_sha256 = hashlib.sha256(ddeb).hexdigest()
        self.scheme = "https"
        self.requests: list[str] = []
        tmp.mkdir(parents=True, exist_ok=True)
        self.cert, key = self_signed_cert(tmp)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.api = f"https://127.0.0.1:{self.port}/devel"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def file_path(self) -> str:
        return f"/ubuntu/+archive/primary/+files/{self.filename}"

    def _answer(self, path: str) -> bytes | None:
        base = f"https://127.0.0.1:{self.port}"
        if path.startswith("/devel/ubuntu/+archive/primary?ws.op=getPublishedBinaries"):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
            ok = q.get("binary_name") == [self.package] and q.get("version") == [self.version] and \
                q.get("exact_match") == ["true"] and \
                q.get("distro_arch_series") == [f"{base}/devel/ubuntu/{self.series}/{self.arch}"]
            return json.dumps({"total_size": 1 if ok else 0, "start": 0, "entries": [
                {"status": "Published", "binary_package_name": self.package, "binary_package_version": self.version,
                 "self_link": f"{base}/devel/ubuntu/+archive/primary/+binarypub/4242"}] if ok else []}).encode()
        if path == "/devel/ubuntu/+archive/primary/+binarypub/4242?ws.op=binaryFileUrls&include_meta=true":
            url = f"{self.scheme}://127.0.0.1:{self.port}{self.file_path}"
            return json.dumps([{"url": url, "size": len(self.ddeb), "sha1": hashlib.sha1(self.ddeb).hexdigest(),
                                "sha256": self.published_sha256}]).encode()
        return None

    def _handler(self):
        lp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                lp.requests.append(self.path)
                if self.path == lp.file_path:
                    body, ctype = lp.ddeb, "application/vnd.debian.binary-package"
                else:
                    body, ctype = lp._answer(self.path), "application/json"
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    def __enter__(self) -> "FakeLaunchpad":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
