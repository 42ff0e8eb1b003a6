"""The server's socket: bound here, before the model loads and before the "serving" line, and
handed to uvicorn as it is. A port that another program holds is then a one-line usage error
up front, and no other program can take the port between that check and uvicorn's start (it
never binds a second time).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket

from digitlab.errors import UsageError
from digitlab.i18n import _


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (IPv6 when host holds a colon, as uvicorn decides), or
    a UsageError that says what is wrong and what to pass instead."""
    if not 1 <= port <= 65535:
        raise UsageError(_("--port must be between 1 and 65535, not {port}").format(port=port))
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    if os.name != "nt":  # a restart may bind at once past TIME_WAIT; on Windows the option
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # would share a live port
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(_("port {port} on {host} is in use (another program is listening "
                               "there); choose another with --port").format(
                port=port, host=host)) from None
        if e.errno == errno.EACCES and port < 1024:
            raise UsageError(_("port {port} on {host}: permission denied (ports below 1024 need "
                               "administrator rights); choose another with --port").format(
                port=port, host=host)) from None
        raise UsageError(_("cannot listen on {host} port {port} ({reason}); pass --host an "
                           "address of this machine, e.g. 127.0.0.1").format(
            host=host, port=port, reason=e.strerror or e)) from None
    return sock


def run(app, sock: socket.socket) -> None:
    """Serve `app` on the bound `sock` until Ctrl+C; uvicorn logs warnings and errors only."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C is how the server is meant to stop
        server.run(sockets=[sock])
