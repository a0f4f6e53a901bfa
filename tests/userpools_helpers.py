"""User pools in tests: a real SMTP server (aiosmtpd) that keeps what it receives, and unmodified boto3
``cognito-idp`` clients against the test server (signed with developer credentials for admin calls, unsigned for the
public ones, as apps call them).

A test module uses the fixtures by importing them (``from tests.userpools_helpers import idp, mailbox, overrides``):
``overrides`` points the server's SYNCSVC_SMTP_URL at ``mailbox``, so codes arrive there and tests read them from
the e-mail.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from typing import Any

import boto3
import botocore
import pytest
from aiosmtpd.controller import Controller
from botocore.config import Config

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION, free_port


@dataclass(frozen=True, slots=True)
class Mail:
    recipients: tuple[str, ...]
    message: Message

    @property
    def text(self) -> str:
        payload = self.message.get_payload(decode=True)
        return payload.decode() if isinstance(payload, bytes) else str(self.message.get_payload())

    @property
    def code(self) -> str:
        """The 6-digit code the message carries."""
        found = re.search(r"\b(\d{6})\b", self.text)
        assert found is not None, self.text
        return found.group(1)


class Mailbox:
    """An SMTP server on 127.0.0.1 and a free port that keeps every message (aiosmtpd ``Controller``, own thread)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self._mails: list[Mail] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        mail = Mail(tuple(envelope.rcpt_tos), message_from_bytes(envelope.content))
        with self._lock:
            self._mails.append(mail)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Mail]:
        with self._lock:
            return [mail for mail in self._mails if address in mail.recipients]

    def all(self) -> list[Mail]:
        with self._lock:
            return list(self._mails)

    async def next_to(self, address: str, *, after: int = 0, timeout: float = 10.0) -> Mail:
        """The ``after``-th (0-based) message to ``address``, waited for (bounded poll)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            mails = self.to(address)
            if len(mails) > after:
                return mails[after]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no message #{after} to {address} within {timeout} s")
            await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def overrides(mailbox: Mailbox) -> dict[str, Any]:
    """The test server sends its codes to ``mailbox``."""
    return {"smtp_url": mailbox.url, "smtp_from": "no-reply@syncsvc.test"}


def secret_hash(secret: str, username: str, client_id: str) -> str:
    """SECRET_HASH as the AWS SDK documentation gives it (computed here independently of the service's code)."""
    digest = hmac.new(secret.encode(), (username + client_id).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class Idp:
    """boto3 ``cognito-idp``: ``admin`` signed with developer credentials, ``public`` unsigned."""

    def __init__(self, endpoint: str) -> None:
        config = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
        session = boto3.session.Session(
            aws_access_key_id=DEVELOPER_KEY, aws_secret_access_key=DEVELOPER_SECRET, region_name=REGION
        )
        self.admin = session.client("cognito-idp", endpoint_url=endpoint, config=config)
        unsigned = Config(
            signature_version=botocore.UNSIGNED, retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=30
        )
        self.public = boto3.session.Session(region_name=REGION).client(
            "cognito-idp", endpoint_url=endpoint, config=unsigned
        )

    async def __call__(self, client: Any, operation: str, **params: Any) -> dict[str, Any]:
        """A call in a thread (the server runs on this loop), without its ResponseMetadata."""
        result: dict[str, Any] = await asyncio.to_thread(getattr(client, operation), **params)
        result.pop("ResponseMetadata", None)
        return result

    async def new_pool(self, **settings: Any) -> str:
        """A pool whose users sign up with their e-mail address as username, codes to their e-mail (by default)."""
        params = {
            "PoolName": "tests",
            "UsernameAttributes": ["email"],
            "AutoVerifiedAttributes": ["email"],
            **settings,
        }
        created = await self(self.admin, "create_user_pool", **params)
        pool_id: str = created["UserPool"]["Id"]
        return pool_id

    async def new_client(self, pool_id: str, **settings: Any) -> dict[str, Any]:
        params = {
            "UserPoolId": pool_id,
            "ClientName": "app",
            "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            **settings,
        }
        client: dict[str, Any] = (await self(self.admin, "create_user_pool_client", **params))["UserPoolClient"]
        return client

    async def confirmed_user(
        self, mailbox: Mailbox, client_id: str, email: str, password: str, **attributes: str
    ) -> str:
        """Signs ``email`` up and confirms it with the code from its e-mail; returns the user's sub."""
        before = len(mailbox.to(email))
        extra = [{"Name": name, "Value": value} for name, value in attributes.items()]
        answer = await self(
            self.public, "sign_up", ClientId=client_id, Username=email, Password=password, UserAttributes=extra
        )
        mail = await mailbox.next_to(email, after=before)
        await self(self.public, "confirm_sign_up", ClientId=client_id, Username=email, ConfirmationCode=mail.code)
        sub: str = answer["UserSub"]
        return sub


@pytest.fixture
def idp(endpoint: str) -> Idp:
    return Idp(endpoint)
