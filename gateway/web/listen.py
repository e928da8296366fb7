"""The socket ``serve`` listens on, and the URLs it is reached at.

The CLI binds the socket itself, not uvicorn: port 0 works (the kernel picks one, and the
CLI prints it), and it is a TCP socket with ``TCP_NODELAY``, which uvicorn's own binding
would not give. It listens before uvicorn starts, so connections made as soon as the
address is printed queue in the kernel instead of being refused. Where it cannot listen
(a port in use, an address not of this machine) ``ListenError`` says so in one line.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

#: Hosts that mean "every interface": their URL is the machine's name or address.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class ListenError(Exception):
    """The server cannot listen where it is told to; the message says why, in one line."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; ``ListenError`` saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for sockets
    # whose protocol says TCP; without it every keep-alive request waits ~40 ms (Nagle
    # against delayed ACKs)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets
        sock.bind((host, port))
        # listen now, so that connections made as soon as the address is printed queue in the
        # kernel instead of being refused while uvicorn starts
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ListenError(_why_not(exc, host, port)) from None
    sock.set_inheritable(True)
    return sock


def _why_not(exc: OSError, host: str, port: int) -> str:
    where = f"cannot listen on {_host_port(host, port)}"
    if isinstance(exc, socket.gaierror):
        return f"{where}: unknown host {host!r}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the port is in use (another server?); choose another --port, or --port 0 for a free one"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {host} is not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges)"
    return f"{where}: {exc.strerror or exc}"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def base_url(host: str, port: int) -> str:
    """The URL of ``host:port`` as this machine reaches it (a wildcard host: loopback)."""
    shown = "127.0.0.1" if host in WILDCARD_HOSTS else host
    return f"http://{_host_port(shown, port)}"


def reachable_urls(host: str, port: int) -> list[str]:
    """Where others reach a server listening on ``host:port``, best first. A wildcard
    host (``0.0.0.0``, ``::``) listens on every interface: its URLs are the machine's
    name, when it resolves to an address others can use, then those addresses;
    loopback only when the machine has no other."""
    if host not in WILDCARD_HOSTS:
        return [base_url(host, port)]
    v6 = host == "::"
    name = socket.getfqdn()
    named = _public_addresses(name, v6)
    addresses = sorted(named | _public_addresses(socket.gethostname(), v6) | _routed_addresses(v6))
    urls = [base_url(name, port)] if named and name != "localhost" else []
    urls += [base_url(address, port) for address in addresses]
    return urls or [base_url(host, port)]


def _public_addresses(name: str, v6: bool) -> set[str]:
    """The addresses ``name`` resolves to that are not loopback or link-local."""
    family = socket.AF_UNSPEC if v6 else socket.AF_INET
    try:
        found = {str(info[4][0]) for info in socket.getaddrinfo(name, None, family, socket.SOCK_STREAM)}
    except OSError:
        return set()
    return {address for address in found if _is_public(address)}


def _routed_addresses(v6: bool) -> set[str]:
    """The source address of this machine's default route(s). A UDP socket's connect
    sends nothing; it only asks the kernel which address it would send from."""
    targets = [(socket.AF_INET, "192.0.2.1")] + ([(socket.AF_INET6, "2001:db8::1")] if v6 else [])
    found = set()
    for family, target in targets:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 9))
                found.add(str(probe.getsockname()[0]))
        except OSError:
            continue
    return {address for address in found if _is_public(address)}


def _is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)
