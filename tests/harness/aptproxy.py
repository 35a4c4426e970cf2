"""A tiny caching HTTP proxy for apt inside the network-namespace test hosts.

Why: the test hosts have no route to the outside world (their namespaces only know the test
bridge), yet apt on them must fetch real Debian packages. The proxy listens on the bridge address
only, forwards GET requests to an allow-list of Debian mirrors and nothing else, and keeps every
``/pool/`` file (immutable by name) in a cache directory shared by all hosts and all runs, so the
large kernel ``-dbg`` package is downloaded once even when three hosts ask for it at the same time.
"""

from __future__ import annotations

import http.server
import logging
import os
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

ALLOWED_HOSTS = frozenset({"deb.debian.org"})
_CHUNK = 1 << 20


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.downloaded: dict[str, int] = {}  # path -> bytes fetched from upstream
        self.served_from_cache: dict[str, int] = {}

    def add(self, table: dict[str, int], key: str) -> None:
        with self.lock:
            table[key] = table.get(key, 0) + 1


class AptProxy:
    """Run ``AptProxy(address, cache_dir)`` as a context manager; ``.url`` is what apt needs."""

    def __init__(self, address: str, cache_dir: Path, port: int = 3142) -> None:
        self.address = address
        self.port = port
        self.cache_dir = Path(cache_dir)
        self.stats = _Stats()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/"

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def __enter__(self) -> "AptProxy":
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: object) -> None:  # quiet; keep in logging
                log.debug("aptproxy: " + fmt, *args)

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                proxy._handle(self, head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                proxy._handle(self, head=True)

        self._server = http.server.ThreadingHTTPServer((self.address, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="aptproxy", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- request handling -------------------------------------------------------------------------

    def _handle(self, req: http.server.BaseHTTPRequestHandler, head: bool) -> None:
        url = urllib.parse.urlsplit(req.path)
        if url.scheme != "http" or url.hostname not in ALLOWED_HOSTS or ".." in url.path.split("/"):
            req.send_error(403, "only Debian mirrors are proxied")
            return
        if "/pool/" in url.path and url.path.endswith(".deb"):
            self._serve_cached(req, url, head)
        else:
            self._pass_through(req, url, head)

    def _upstream(self, url: urllib.parse.SplitResult, req: http.server.BaseHTTPRequestHandler):
        headers = {"User-Agent": "stapdoctor-test-aptproxy"}
        for name in ("If-Modified-Since", "Range", "If-Range"):
            if req.headers.get(name):
                headers[name] = req.headers[name]
        return urllib.request.urlopen(urllib.request.Request(url.geturl(), headers=headers), timeout=120)

    def _pass_through(self, req, url, head: bool) -> None:
        try:
            resp = self._upstream(url, req)
        except urllib.error.HTTPError as err:
            req.send_response(err.code)
            for name in ("Last-Modified", "Content-Length", "Content-Type"):
                if err.headers.get(name):
                    req.send_header(name, err.headers[name])
            if not err.headers.get("Content-Length"):
                req.send_header("Content-Length", "0")
            req.end_headers()
            if not head and err.headers.get("Content-Length"):
                req.wfile.write(err.read())
            return
        except OSError as err:
            req.send_error(502, f"upstream: {err}")
            return
        with resp:
            req.send_response(resp.status)
            for name in ("Last-Modified", "Content-Length", "Content-Type", "Content-Range"):
                if resp.headers.get(name):
                    req.send_header(name, resp.headers[name])
            req.end_headers()
            if not head:
                shutil.copyfileobj(resp, req.wfile, _CHUNK)

    def _serve_cached(self, req, url, head: bool) -> None:
        target = self.cache_dir / url.hostname / url.path.lstrip("/")
        with self._lock_for(str(target)):
            if target.exists():
                self.stats.add(self.stats.served_from_cache, url.path)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.with_name(target.name + f".part{os.getpid()}")
                try:
                    with urllib.request.urlopen(url.geturl(), timeout=300) as resp, open(part, "wb") as out:
                        shutil.copyfileobj(resp, out, _CHUNK)
                    part.rename(target)
                except urllib.error.HTTPError as err:
                    part.unlink(missing_ok=True)
                    req.send_error(err.code, "upstream refused")
                    return
                except OSError as err:
                    part.unlink(missing_ok=True)
                    req.send_error(502, f"upstream: {err}")
                    return
                self.stats.add(self.stats.downloaded, url.path)
        size = target.stat().st_size
        req.send_response(200)
        req.send_header("Content-Length", str(size))
        req.send_header("Content-Type", "application/vnd.debian.binary-package")
        req.end_headers()
        if not head:
            with open(target, "rb") as f:
                shutil.copyfileobj(f, req.wfile, _CHUNK)
