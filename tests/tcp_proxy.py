"""A loopback TCP proxy that can cut every connection and refuse new ones, then come back.

Between the engine and the test broker it plays a network outage: :meth:`TcpProxy.cut` closes the
listening socket and every open connection (clients then get "connection refused", as from a
stopped broker); :meth:`TcpProxy.restore` listens again on the same port.

>>> import socket
>>> echo = socket.create_server(("127.0.0.1", 0))
>>> proxy = TcpProxy(echo.getsockname()[1])
>>> client = socket.create_connection(("127.0.0.1", proxy.port))
>>> server, _ = echo.accept()
>>> client.sendall(b"ping"); server.recv(4)
b'ping'
>>> proxy.cut()
>>> client.recv(4)          # the connection is gone
b''
>>> try:
...     socket.create_connection(("127.0.0.1", proxy.port), timeout=1)
... except ConnectionRefusedError:
...     print("refused")
refused
>>> proxy.restore(); socket.create_connection(("127.0.0.1", proxy.port)).close()
>>> proxy.close(); echo.close(); server.close(); client.close()
"""

from __future__ import annotations

import socket
import threading

__all__ = ["TcpProxy", "free_port"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpProxy:
    """Forward ``127.0.0.1:port`` (a free one unless given) to ``127.0.0.1:target``."""

    def __init__(self, target: int, port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self.connections = 0  # accepted so far
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        """Listen (again) on :attr:`port`."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="proxy-accept").start()

    def cut(self) -> None:
        """Stop listening and close every connection (both sides)."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            _close(listener)
        for s in sockets:
            _close(s)

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # cut: the listener is closed
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True, name="proxy-pump").start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
