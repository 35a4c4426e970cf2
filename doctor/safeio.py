"""Reading data we do not trust (a sysroot, a saved snapshot, a host's collector output) with bounds.

Why: `check --root` and `--snapshot` are pointed at images and files from elsewhere, and `fleet` reads
what possibly compromised hosts send. A FIFO or a link to /dev/zero must not hang a read, a small gzip
must not inflate to gigabytes, and nothing a host sends may be printed raw to the operator's terminal.
So: regular files only, opened without blocking, read up to a cap; gzip inflated up to a cap; control
characters replaced before printing.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import zlib

KiB, MiB = 1024, 1024 * 1024


class UnsafeFile(OSError):
    """A file that is not a regular file or is larger than its cap; `strerror` says which."""

    def __init__(self, message: str, filename: str | None = None):
        super().__init__(errno.EINVAL, message, filename)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _open_regular_fd(path: str | os.PathLike) -> int:
    """An O_RDONLY descriptor of a regular file (links followed). O_NONBLOCK makes opening a FIFO return at
    once instead of waiting for a writer; fstat on the open descriptor then decides, so a link swapped
    between a check and the open cannot slip through."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
            raise UnsafeFile(f"{_kind(st.st_mode)}, not a regular file: not read", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (links followed; FIFOs, devices refused).

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; fstat on the open
    descriptor then decides, so a link swapped between a check and the open cannot slip through. The
    size is not trusted (procfs and sysfs files say 0): the read itself stops after limit + 1 bytes.
    """
    fd = _open_regular_fd(path)
    try:
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 * MiB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnsafeFile(f"larger than {human(limit)}: not read", str(path))
    return data


def open_regular(path: str | os.PathLike):
    """A binary file object for a regular file (for parsers that seek, such as pyelftools); a FIFO or a
    device is refused as read_regular refuses it, instead of blocking or reading without end."""
    fd = _open_regular_fd(path)
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def gunzip(raw: bytes, limit: int) -> bytes:
    """Inflate gzip data (one or more members) to at most `limit` bytes; ValueError beyond, or on garbage."""
    if not raw:
        raise ValueError("not a gzip file: empty")
    out: list[bytes] = []
    total = 0
    data = raw
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = d.decompress(data, limit + 1 - total)  # never 0 (= unbounded): total <= limit here
        except zlib.error as e:
            raise ValueError(f"not a gzip file: {e}") from None
        out.append(chunk)
        total += len(chunk)
        if total > limit:
            raise ValueError(f"inflates to more than {human(limit)}: not read")
        if not d.eof:
            raise ValueError("not a gzip file: truncated")
        data = d.unused_data.lstrip(b"\0")  # members may follow; zero padding may end the file
    return b"".join(out)


def human(n: int) -> str:
    for unit, size in (("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


#: what a terminal must not get from hostile text, besides tab and newline: C0 and C1 controls and DEL
#: (escape sequences), the Unicode bidi and format controls that reorder or hide text, and lone
#: surrogates (no encoding can print them).  Used for host facts here and symbol names in profiler/.
TERMINAL_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff"
_CONTROL = re.compile(f"[{TERMINAL_UNSAFE}]")
_CONTROL_NL = re.compile(f"[\t\n{TERMINAL_UNSAFE}]")


def printable(text: object, *, newlines: bool = False) -> str:
    """`text` with control characters (ESC, CR, BEL, bidi overrides ...) shown as '?': safe to print.

    Host facts (PRETTY_NAME, osrelease, file contents in evidence) come from hosts that may be hostile;
    a raw ESC sequence could rewrite the operator's terminal. Tabs stay; newlines stay when `newlines`.
    """
    s = text if isinstance(text, str) else str(text)
    return (_CONTROL if newlines else _CONTROL_NL).sub("?", s.replace("\t", " ") if not newlines else s)
