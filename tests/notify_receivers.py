"""Real receivers on loopback for the notifier's tests: an SMTP server (aiosmtpd) and an HTTP server.

:class:`MailServer` keeps every message it accepted (parsed); :class:`HttpReceiver` keeps every
request (headers, raw body) and answers with ``status`` (change it to fail or recover). Its port is
reserved up front, so a receiver can be "down" (nothing listening: connection refused) before it
starts, and come up later on the same port.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

__all__ = ["HttpReceiver", "MailServer", "free_port"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Keep:
    def __init__(self, server: "MailServer") -> None:
        self.server = server

    async def handle_DATA(self, _server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.server.lock:
            self.server.messages.append((list(envelope.rcpt_tos), message))
            self.server.sessions.add(tuple(session.peer))
        return "250 OK"


class MailServer:
    """aiosmtpd on 127.0.0.1; with ``login`` it requires AUTH with that (user, password); with
    ``starttls`` (an ``ssl.SSLContext``) it requires STARTTLS first, with ``implicit_tls`` it speaks TLS
    from the first byte."""

    def __init__(self, login: tuple[str, str] | None = None, *, starttls=None, implicit_tls=None) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.sessions: set[tuple] = set()  # client (host, port) of the SMTP connections that carried a message
        self.lock = threading.Lock()
        self.port = free_port()
        kwargs = {}
        if login is not None:
            def check(_server, _session, _envelope, _mechanism, data):
                ok = (data.login.decode(), data.password.decode()) == login
                return AuthResult(success=ok)
            kwargs = {"authenticator": check, "auth_required": True, "auth_require_tls": starttls is not None}
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if implicit_tls is not None:
            kwargs.update(ssl_context=implicit_tls)
        self.controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> "MailServer":
        self.controller.start()
        return self

    def __exit__(self, *_) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpts, m in self.messages if address in rcpts]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """A threaded HTTP server on 127.0.0.1:``port`` that records POSTs and answers ``status``."""

    status: int = 200
    port: int = field(default_factory=free_port)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "HttpReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Request(self.path, dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "HttpReceiver":
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()
