"""Secrets never reach a message: passwords in URLs, the warehouse password, Kafka SASL/SSL secrets.

One helper for every layer: :func:`redact_url` for a URL about to be printed, :func:`secrets_of`
for the secret values of a configuration, :func:`redact` for any text (an error, a log line), and
:class:`RedactingFilter` so that log records are redacted wherever they are emitted.

>>> redact_url("http://bob:s3cret@ch.internal:8123/?database=x")
'http://bob:***@ch.internal:8123/?database=x'
>>> redact("cannot reach https://bob:s3cret@ch:8443 (token abc123)", ["abc123"])
'cannot reach https://bob:***@ch:8443 (token ***)'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from boucle.config.settings import Settings

__all__ = ["MASK", "MIN_SECRET_LENGTH", "RedactingFilter", "is_secret_key", "redact", "redact_url", "secrets_of"]

MASK = "***"
# user:password@ in any scheme://... written in a text; the user name stays (it says who failed).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/?#@\s]*):(?P<pw>[^@/?#\s]*)@")
# librdkafka (and other) keys whose values are secrets: sasl.password, ssl.key.password,
# sasl.oauthbearer.client.secret, ssl.keystore.password, *token*...
_SECRET_KEY = re.compile(r"(password|secret|token|credential|private|(^|\.)key\.pem$)", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """Whether a configuration key holds a secret.

    >>> [is_secret_key(k) for k in ("sasl.password", "sasl.username", "ssl.key.pem", "sasl.oauthbearer.client.secret")]
    [True, False, True, True]
    """
    return bool(_SECRET_KEY.search(key))


def redact_url(url: str) -> str:
    """``url`` with the password it may embed replaced by ``***`` (the user name kept)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL after all (e.g. a bad port): fall back to the pattern
        return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    if password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:{MASK}@{host}" if parts.username else f":{MASK}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


# A secret shorter than this is not searched for in free text (it would mask common words);
# URL passwords are masked whatever their length.
MIN_SECRET_LENGTH = 4


def secrets_of(settings: Settings) -> list[str]:
    """The secret values of ``settings``: the warehouse password, the password of its URL, and
    every librdkafka value whose key names a secret (``sasl.password``...).

    A value that is also printed as what it is elsewhere (the user name, the database name: the
    demo's ``boucle``/``boucle``) is left out: masking it would garble every message without
    hiding anything.
    """
    warehouse, librdkafka = settings.warehouse, settings.kafka.librdkafka
    found = [warehouse.password.get_secret_value()]
    if warehouse.url:
        try:
            found.append(urlsplit(warehouse.url).password or "")
        except ValueError:
            pass
    found += [value for key, value in librdkafka.items() if is_secret_key(key)]
    public = {warehouse.user, warehouse.database, librdkafka.get("sasl.username", "")}
    return [s for s in dict.fromkeys(found) if len(s) >= MIN_SECRET_LENGTH and s not in public]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without URL passwords nor any of ``secrets`` (longest first, so one that contains
    another is masked whole)."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites every record it sees so that no secret (nor URL password) is emitted.

    Attach it to handlers (a filter on a logger does not see its children's records).
    """

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact_message(self, record: logging.LogRecord) -> None:
        """Redact the message of ``record`` (its traceback is left to :meth:`filter`)."""
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None

    def filter(self, record: logging.LogRecord) -> bool:
        self.redact_message(record)
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are formatted from the exception: keep the text, drop the object.
            exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(exc_text, self.secrets)
        return True
