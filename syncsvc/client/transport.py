"""HTTP for the client: Cognito Identity's unsigned guest calls (json 1.1) and Cognito Sync calls (rest-json)
authenticated with ``Authorization: Bearer <token>``, renewing the token once when the server refuses it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
import yarl

from syncsvc.client.errors import CONNECTION_ERROR, SyncClientError, error_code, error_message

#: Gives a valid OpenID token of the identity (a new one each call: it is called again when the server refuses one).
TokenProvider = Callable[[], Awaitable[str]]

#: Answers after which the token is renewed and the call made once more.
RENEW_ON = frozenset({"NotAuthorizedException", "ExpiredTokenException"})
IDENTITY_TARGET = "AWSCognitoIdentityService."
AMZ_JSON = "application/x-amz-json-1.1"
DEFAULT_TIMEOUT = 30.0


def client_context(installation_id: str) -> str:
    """The ``x-amz-Client-Context`` header naming this installation, as the mobile SDKs send it (base64 JSON)."""
    return base64.b64encode(orjson.dumps({"client": {"installation_id": installation_id}})).decode()


def label(value: str) -> str:
    """A URI label percent-encoded as the AWS SDKs encode it (``us-east-1:…`` → ``us-east-1%3A…``)."""
    return quote(value, safe="-._~")


def path(*segments: str) -> str:
    return "/" + "/".join(label(segment) if index % 2 else segment for index, segment in enumerate(segments))


async def _answer(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The JSON body of a success, or the error it carries as :class:`SyncClientError`."""
    text = await response.read()
    try:
        body = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status >= 300:
        code = error_code(response.headers.get("x-amzn-ErrorType"), body, response.status)
        raise SyncClientError(code, error_message(body), response.status, body)
    return body


def _unreachable(exc: Exception) -> SyncClientError:
    return SyncClientError(CONNECTION_ERROR, str(exc) or type(exc).__name__, 0)


async def identity_call(endpoint: str, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One unsigned Cognito Identity call (GetId, GetOpenIdToken, …), on a session of its own."""
    headers = {"Content-Type": AMZ_JSON, "X-Amz-Target": IDENTITY_TARGET + operation}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT)) as session,
            session.post(endpoint.rstrip("/") + "/", data=orjson.dumps(payload), headers=headers) as response,
        ):
            return await _answer(response)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _unreachable(exc) from exc


async def new_guest_identity(endpoint: str, pool_id: str) -> str:
    """A new guest identity of the pool (unsigned GetId; the pool must allow unauthenticated identities)."""
    answer = await identity_call(endpoint, "GetId", {"IdentityPoolId": pool_id})
    identity_id: str = answer["IdentityId"]
    return identity_id


class GuestTokens:
    """The token provider of a guest identity: each call is an unsigned GetOpenIdToken (tokens live 10 minutes)."""

    def __init__(self, endpoint: str, identity_id: str) -> None:
        self.endpoint = endpoint
        self.identity_id = identity_id

    async def __call__(self) -> str:
        answer = await identity_call(self.endpoint, "GetOpenIdToken", {"IdentityId": self.identity_id})
        token: str = answer["Token"]
        return token


class SyncTransport:
    """Cognito Sync calls of one identity with ``Authorization: Bearer``; owns its aiohttp session unless given one.

    The token is fetched on first use and renewed (``token_provider`` called again) when a call is answered
    NotAuthorizedException or ExpiredTokenException; the call is then made once more, and its answer stands.
    """

    def __init__(
        self,
        endpoint: str,
        token_provider: TokenProvider,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token_provider = token_provider
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: str | None = None
        self._renewing = asyncio.Lock()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use, inside the running loop
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self._timeout.total)
            )
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def token(self, *, refused: str | None = None) -> str:
        """The current token; a new one when there is none yet or ``refused`` (the one just refused) is current."""
        async with self._renewing:
            if self._token is None or self._token == refused:
                self._token = await self.token_provider()
            return self._token

    async def call(
        self,
        method: str,
        target: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One rest-json call (``target`` is an encoded path, see :func:`path`); the JSON answer or the error."""
        token = await self.token()
        try:
            return await self._send(method, target, query, body, headers, token)
        except SyncClientError as exc:
            if exc.code not in RENEW_ON:
                raise
        return await self._send(method, target, query, body, headers, await self.token(refused=token))

    async def _send(
        self,
        method: str,
        target: str,
        query: dict[str, str] | None,
        body: dict[str, Any] | None,
        extra: dict[str, str] | None,
        token: str,
    ) -> dict[str, Any]:
        url = self.url(target, query)
        headers = {**(extra or {}), "Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        try:
            async with self.session.request(method, url, data=data, headers=headers, timeout=self._timeout) as response:
                return await _answer(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(exc) from exc

    def url(self, target: str, query: dict[str, str] | None = None, *, websocket: bool = False) -> yarl.URL:
        text = self.endpoint + target
        if query:
            text += "?" + urlencode(query, quote_via=quote, safe="-._~")
        if websocket:
            text = "ws" + text.removeprefix("http") if text.startswith("http") else text
        return yarl.URL(text, encoded=True)

    async def websocket(self, target: str) -> aiohttp.ClientWebSocketResponse:
        """Opens a WebSocket with the Bearer header, renewing the token once if the handshake is refused (401/403).

        A refused handshake raises :class:`SyncClientError` (the AWS error name from ``x-amzn-ErrorType`` when the
        server sent one); an unreachable server raises it with the code ``ConnectionError``.
        """
        token = await self.token()
        try:
            return await self._open(target, token)
        except SyncClientError as exc:
            if exc.status not in (401, 403):
                raise
        return await self._open(target, await self.token(refused=token))

    async def _open(self, target: str, token: str) -> aiohttp.ClientWebSocketResponse:
        try:
            return await self.session.ws_connect(
                self.url(target, websocket=True),
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            name = exc.headers.get("x-amzn-ErrorType") if exc.headers else None
            raise SyncClientError(error_code(name, {}, exc.status), exc.message, exc.status) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(exc) from exc
