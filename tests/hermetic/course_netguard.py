"""The test suite's network guard: loopback only; any other host is logged and refused at once.

It is an audit hook (``sys.addaudithook``, PEP 578) that watches name lookups
(``socket.getaddrinfo``, ``socket.gethostbyname``, ...), ``socket.connect``,
``socket.sendto``/``sendmsg`` and ``urllib.Request``. Loopback (``127.0.0.0/8``,
``::1``, ``localhost``), the unspecified address, Unix and netlink sockets pass;
a lookup of this machine's own name is refused without a log line (torchrun
asks for it; ``socket.getfqdn()`` then returns the plain name).
Anything else appends one line to the log named by ``COURSE_NETGUARD_LOG``
(pid, process, event, host, the first frames outside the standard library) and
raises ``OSError`` (``socket.gaierror`` for lookups, ``URLError`` for urllib), so
code sees "network unreachable" at once instead of waiting for a timeout.

Every Python process of a test run installs it: pytest through the root
``conftest.py``, and the processes pytest starts (Jupyter kernels, torchrun
workers, ``python -m helpers.train``) through ``sitecustomize.py`` next to this
file, which they import at start-up because the conftest puts this folder first
on ``PYTHONPATH``. Without ``COURSE_NETGUARD_LOG`` nothing is installed.

Limits: only Python-level socket calls are seen. C/C++ code that opens its own
sockets (libzmq in Jupyter, gloo/TCPStore in torch.distributed) is not.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LOG_ENV", "active_log", "install", "is_loopback", "logging_to", "read_log", "uninstall"]

LOG_ENV = "COURSE_NETGUARD_LOG"

_LOOKUPS = frozenset({"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
                      "socket.gethostbyaddr", "socket.getnameinfo"})
_SENDS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_WATCHED = _LOOKUPS | _SENDS | {"urllib.Request"}
_LOCAL_NAMES = frozenset({"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_STDLIB = os.path.dirname(os.__file__) + os.sep
_PACKAGE_DIRS = ("site-packages" + os.sep, "dist-packages" + os.sep)
_HERE = os.path.abspath(__file__)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(_HERE))) + os.sep  # the checkout

_log_path: str | None = None  # None: the hook lets everything pass
_installed = False


def install(log_path: str | None = None) -> bool:
    """Install the hook (once per process) logging to ``log_path`` or ``$COURSE_NETGUARD_LOG``.

    Returns whether the guard is active; without a log path it is not.
    """
    global _log_path, _installed
    path = log_path or os.environ.get(LOG_ENV)
    if not path:
        return False
    _log_path = path
    if not _installed:
        sys.addaudithook(_hook)  # cannot be removed again; an empty _log_path switches it off
        _installed = True
    return True


def uninstall() -> None:
    """Let everything pass again (the hook stays, doing nothing)."""
    global _log_path
    _log_path = None


def active_log() -> str | None:
    """The log file refused attempts go to, or None when the guard is off."""
    return _log_path


@contextmanager
def logging_to(path: str | os.PathLike[str]) -> Iterator[None]:
    """Log to ``path`` inside the block (for tests of the guard itself), then to the previous log again."""
    global _log_path
    previous = _log_path
    install(os.fspath(path))
    try:
        yield
    finally:
        _log_path = previous


def read_log(path: str | os.PathLike[str]) -> list[str]:
    """The logged attempts in ``path`` (none when the file does not exist)."""
    try:
        with open(path, encoding="utf-8") as log:
            return [line.rstrip("\n") for line in log if line.strip()]
    except FileNotFoundError:
        return []


def is_loopback(host: object) -> bool:
    """Whether ``host`` (a name or address, str or bytes, or None) stays on this machine without a lookup."""
    if host is None:
        return True  # getaddrinfo(None, port): the loopback or wildcard address
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip().lower().rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(".localhost"):  # RFC 6761: *.localhost is loopback
        return True
    import ipaddress

    try:
        address = ipaddress.ip_address(name.split("%", 1)[0].strip("[]"))  # drop an IPv6 scope id
    except ValueError:
        return False  # a name that needs a lookup
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    return address.is_loopback or address.is_unspecified


def _is_own_hostname(host: object) -> bool:
    """Whether ``host`` is this machine's name: its lookup may ask DNS (or mDNS) and its answers vary."""
    import _socket

    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    own = _socket.gethostname().lower().rstrip(".")
    return isinstance(host, str) and bool(own) and host.strip().lower().rstrip(".") == own


def _hook(event: str, args: tuple) -> None:
    if event in _WATCHED and _log_path is not None:  # every other event returns here at once
        _check(event, args)


def _check(event: str, args: tuple) -> None:
    if event == "urllib.Request":
        from urllib.parse import urlsplit

        url = args[0]
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = url
        if not is_loopback(host):
            from urllib.error import URLError

            raise URLError(_refuse(event, url))
        return
    if event in _LOOKUPS:
        host = args[0]
        if event == "socket.getnameinfo" and isinstance(host, tuple):
            host = host[0] if host else None
        if is_loopback(host):
            return
        import _socket

        if _is_own_hostname(host):  # torchrun asks getfqdn(); refused quietly, getfqdn() then keeps the name
            raise _socket.gaierror(_socket.EAI_NONAME, f"lookup of this machine's name {host!r} skipped in tests")
        raise _socket.gaierror(_socket.EAI_NONAME, _refuse(event, host, args[1:2]))
    sock, address = args[0], args[1]
    import _socket

    family = getattr(sock, "family", None)
    local_families = {getattr(_socket, name, None) for name in ("AF_UNIX", "AF_NETLINK")} - {None}
    if family in local_families or address is None:
        return  # local sockets; sendmsg without an address goes where connect (checked) pointed
    if family in (_socket.AF_INET, _socket.AF_INET6) and isinstance(address, tuple) and address:
        if is_loopback(address[0]):
            return
        target: object = address[0]
        port = address[1:2]
    else:
        target, port = address, ()  # raw packets and other families: never needed by the course
    import errno

    raise OSError(errno.ENETUNREACH, _refuse(event, target, port))


def _refuse(event: str, target: object, port: tuple = ()) -> str:
    """Append one line about the refused attempt to the log; return the error message."""
    shown = repr(target) + (f" port {port[0]!r}" if port else "")
    line = (f"pid={os.getpid()} process={_process_name()} event={event} host={shown} "
            f"from={_where()}\n")
    try:
        with open(_log_path, "a", encoding="utf-8") as log:  # type: ignore[arg-type]
            log.write(line)  # one short append: lines of parallel processes do not mix
    except OSError:
        pass  # the refusal below matters more than the log line
    return f"network access refused by the test suite's guard (only loopback is allowed): {shown}"


def _process_name() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    argv = getattr(sys, "argv", None) or ["?"]
    name = os.path.basename(argv[0]) or "?"
    return f"{name}[{worker}]" if worker else name


def _where(limit: int = 3) -> str:
    """Where the attempt came from: the innermost frame outside the standard library and this file,
    then the next frames of the caller's own code (not installed packages), innermost first."""
    frame = sys._getframe(1)
    found: list[str] = []
    while frame is not None and len(found) < limit:
        filename = frame.f_code.co_filename
        installed = any(marker in filename for marker in _PACKAGE_DIRS)
        stdlib = (filename.startswith(_STDLIB) and not installed) or filename.startswith("<frozen")
        if not stdlib and os.path.abspath(filename) != _HERE and not (found and installed):
            found.append(f"{_short(filename)}:{frame.f_lineno} in {frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(found) or "?"


def _short(filename: str) -> str:
    """A path in site-packages from there, one inside the checkout relative to it, others as they are."""
    for marker in _PACKAGE_DIRS:
        if marker in filename:
            return filename.split(marker, 1)[1]
    if filename.startswith(_ROOT):
        return filename[len(_ROOT):]
    return filename
