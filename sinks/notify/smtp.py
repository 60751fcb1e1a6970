"""E-mail through an SMTP relay (the standard library's ``smtplib``), one connection per :meth:`~SmtpSender.batch`.

``security``: ``starttls`` (plain connection upgraded with STARTTLS, refused if the relay cannot),
``tls`` (implicit TLS from the first byte, port 465), ``none`` (loopback relays, tests). The login
is given by the caller (read from the environment, never from a file); with one, ``none`` over a
non-loopback host is refused: a password is not sent in clear.

>>> sender = SmtpSender("localhost", 25, security="none", from_address="boucle@localhost")
>>> message = sender.message("ops@example.org", "Subject", "text", "<p>html</p>", {"X-Boucle-Delivery": "k1"})
>>> message["To"], message.get_content_type(), message["X-Boucle-Delivery"]
('ops@example.org', 'multipart/alternative', 'k1')
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Iterator, Literal, Mapping

from boucle.sinks.notify.errors import DeliveryFailed

__all__ = ["SmtpSender"]

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class SmtpSender:
    """Sends :class:`~email.message.EmailMessage` objects; raises :class:`DeliveryFailed`."""

    def __init__(self, host: str, port: int, *, security: Literal["starttls", "tls", "none"] = "starttls",
                 from_address: str, username: str = "", password: str = "", timeout: float = 20.0,
                 context: ssl.SSLContext | None = None) -> None:
        if username and security == "none" and host not in _LOOPBACK:
            raise ValueError(f"refusing to send an SMTP password in clear to {host}: use security starttls or tls")
        self.host, self.port, self.security = host, port, security
        self.from_address = from_address
        self._login = (username, password) if username else None
        self.timeout = timeout
        self.context = context or ssl.create_default_context()
        self._client: smtplib.SMTP | None = None
        self._batching = False

    def message(self, to: str, subject: str, text: str, html: str | None = None,
                headers: Mapping[str, str] | None = None) -> EmailMessage:
        """A message to one address: a plain-text part and, if given, an HTML alternative."""
        message = EmailMessage()
        message["From"] = self.from_address
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.from_address.rpartition("@")[2] or None)
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Send the messages of this block over one connection (opened at the first, closed at the end);
        a failed message drops it and the next one reconnects."""
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            self._drop(quit=True)

    def _drop(self, quit: bool = False) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.quit() if quit else client.close()
            except (smtplib.SMTPException, OSError):
                client.close()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                client.starttls(context=self.context)
            if self._login:
                client.login(*self._login)
        except BaseException:
            client.close()
            raise
        return client

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to the relay (accepted by it for every recipient, or raise)."""
        try:
            if self._client is None:
                self._client = self._connect()
            refused = self._client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            self._drop()
            raise DeliveryFailed(f"smtp refused {', '.join(exc.recipients)}", permanent=True) from None
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            raise DeliveryFailed(f"smtp login refused ({exc.smtp_code})") from None
        except smtplib.SMTPNotSupportedError as exc:
            self._drop()
            raise DeliveryFailed(f"smtp relay {self.host}:{self.port}: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            self._drop()
            permanent = 500 <= exc.smtp_code < 600
            raise DeliveryFailed(f"smtp {exc.smtp_code} {_text(exc.smtp_error)}", permanent=permanent) from None
        except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as exc:
            self._drop()
            raise DeliveryFailed(f"smtp relay {self.host}:{self.port}: {type(exc).__name__}: {exc}") from None
        finally:
            if not self._batching:
                self._drop(quit=True)
        if refused:
            raise DeliveryFailed(f"smtp refused {', '.join(refused)}", permanent=True)


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
