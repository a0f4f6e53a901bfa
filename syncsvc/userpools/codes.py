"""One-time codes and how they reach people: generation, lifetimes, masking, and the code senders.

A code is 6 random digits, used once. Only its HMAC digest is stored (``syncsvc.userpools.sealing``), with its expiry
and a count of wrong tries (``syncsvc.store.userpools``). Senders:

* :class:`LogSender` (development, the default): logs "code for <user> sent to <masked destination>"; the code itself
  only when ``SYNCSVC_LOG_CODES`` is on (never by default: a code in a log is a password reset for whoever reads it).
* :class:`SmtpSender` (``SYNCSVC_SMTP_URL``): an e-mail through an SMTP server, with the standard library's
  ``smtplib`` in a worker thread and a bounded timeout. ``smtp://host:port`` plain, ``smtp+starttls://`` upgrades
  with STARTTLS, ``smtps://`` is TLS from the start; ``user:password@`` logs in. SMS codes have no gateway yet: they
  are logged like LogSender's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

from syncsvc.errors import CodeDeliveryFailureError
from syncsvc.userpools.model import CodeDelivery, CodePurpose

log = logging.getLogger("syncsvc.userpools")

#: How long a code may be used, by what it proves: 24 hours to confirm a sign-up or an attribute, 1 hour to reset.
LIFETIME_MS = {
    CodePurpose.SIGN_UP: 24 * 3600 * 1000,
    CodePurpose.ATTRIBUTE: 24 * 3600 * 1000,
    CodePurpose.RESET: 3600 * 1000,
}
#: Wrong tries after which a code is dead (a new one must be asked for).
MAX_TRIES = 5
SMTP_TIMEOUT_SECONDS = 10.0


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def mask(destination: str) -> str:
    """A destination as Cognito shows it: ``a***@e***`` for an e-mail address, ``+*******1234`` for a phone."""
    if "@" in destination:
        local, _, domain = destination.partition("@")
        return f"{local[:1]}***@{domain[:1]}***"
    return "+" + "*" * max(len(destination) - 5, 0) + destination[-4:]


def delivery(attribute: str, destination: str) -> CodeDelivery:
    return CodeDelivery(mask(destination), "EMAIL" if attribute == "email" else "SMS", attribute)


@dataclass(frozen=True, slots=True)
class CodeMessage:
    """One code (or temporary password) to deliver."""

    username: str
    destination: str
    medium: Literal["EMAIL", "SMS"]
    subject: str
    #: The text, which holds the secret: never logged unless SYNCSVC_LOG_CODES is on.
    body: str = field(repr=False)


class CodeSender(Protocol):
    async def send(self, message: CodeMessage) -> None:
        """Delivers ``message``; CodeDeliveryFailureException when it cannot."""


class LogSender:
    """Logs that a code was sent (and the message only when ``log_codes``)."""

    def __init__(self, *, log_codes: bool = False) -> None:
        self._log_codes = log_codes

    async def send(self, message: CodeMessage) -> None:
        log.info("code for %s sent to %s", message.username, mask(message.destination))
        if self._log_codes:
            log.info("SYNCSVC_LOG_CODES: message to %s: %s", message.destination, message.body)


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    tls: Literal["none", "starttls", "implicit"]
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """``smtp[s]://[user:password@]host[:port]`` (ValueError naming what is wrong)."""
        parts = urlsplit(url)
        modes: dict[str, tuple[Literal["none", "starttls", "implicit"], int]] = {
            "smtp": ("none", 25),
            "smtp+starttls": ("starttls", 587),
            "smtps": ("implicit", 465),
        }
        if parts.scheme not in modes or not parts.hostname:
            raise ValueError("expected smtp://, smtp+starttls:// or smtps:// with a host")
        tls, port = modes[parts.scheme]
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, parts.port or port, tls, user, password)


class SmtpSender:
    """Sends codes by e-mail through one SMTP server (SMS: logged, see the module's docstring)."""

    def __init__(self, server: SmtpServer, *, sender: str, log_codes: bool = False) -> None:
        self._server = server
        self._from = sender
        self._fallback = LogSender(log_codes=log_codes)

    async def send(self, message: CodeMessage) -> None:
        if message.medium != "EMAIL":
            await self._fallback.send(message)
            return
        email = EmailMessage()
        email["From"] = self._from
        email["To"] = message.destination
        email["Subject"] = message.subject
        email.set_content(message.body)
        try:
            await asyncio.to_thread(self._deliver, email)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("could not send a code for %s by SMTP: %s", message.username, type(exc).__name__)
            raise CodeDeliveryFailureError("Unable to deliver the message; try again later") from None
        log.info("code for %s sent to %s", message.username, mask(message.destination))

    def _deliver(self, email: EmailMessage) -> None:
        server = self._server
        smtp: smtplib.SMTP
        if server.tls == "implicit":
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS)
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS)
        with smtp:
            if server.tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if server.user is not None:
                smtp.login(server.user, server.password or "")
            smtp.send_message(email)


def message_for(
    purpose: CodePurpose, username: str, destination: str, medium: Literal["EMAIL", "SMS"], code: str
) -> CodeMessage:
    subjects = {
        CodePurpose.SIGN_UP: "Your verification code",
        CodePurpose.ATTRIBUTE: "Your verification code",
        CodePurpose.RESET: "Your password reset code",
    }
    return CodeMessage(username, destination, medium, subjects[purpose], f"Your verification code is {code}.")


def invitation(username: str, destination: str, medium: Literal["EMAIL", "SMS"], password: str) -> CodeMessage:
    """AdminCreateUser's welcome message with the temporary password."""
    body = f"Your username is {username} and temporary password is {password}."
    return CodeMessage(username, destination, medium, "Your temporary password", body)
