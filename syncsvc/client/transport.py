"""HTTP for the client: Cognito Identity's unsigned guest calls (json 1.1) and Cognito Sync calls (rest-json)
authenticated with ``Authorization: Bearer <token>``, renewing the token once when the server refuses it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
import yarl

from syncsvc.client.errors import CONNECTION_ERROR, IDENTITY_CHANGED, SyncClientError, error_code, error_message

#: Gives a valid OpenID token of the identity (a new one each call: it is called again when the server refuses one).
TokenProvider = Callable[[], Awaitable[str]]
#: A Cognito ``Logins`` map {provider: the user's token from it}, or an async callable giving a fresh one each call
#: (login tokens expire: an app that can refresh them passes a callable).
Logins = Mapping[str, str] | Callable[[], Awaitable[Mapping[str, str]]]

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


async def identity_of(endpoint: str, pool_id: str, logins: Mapping[str, str]) -> str:
    """The identity the logins belong to (unsigned GetId with them; a new identity when they belong to no one)."""
    answer = await identity_call(endpoint, "GetId", {"IdentityPoolId": pool_id, "Logins": dict(logins)})
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


async def open_id_token(endpoint: str, identity_id: str, logins: Mapping[str, str]) -> tuple[str, str]:
    """Unsigned GetOpenIdToken of an identity with its logins: (the identity id answered, the token). The id differs
    from ``identity_id`` when the server merged that identity (a guest) into the one the logins belong to."""
    answer = await identity_call(endpoint, "GetOpenIdToken", {"IdentityId": identity_id, "Logins": dict(logins)})
    return answer["IdentityId"], answer["Token"]


async def signed_in(endpoint: str, pool_id: str, identity_id: str, logins: Mapping[str, str]) -> tuple[str, str]:
    """GetOpenIdToken of ``identity_id`` with ``logins``: (the identity id answered, its token). An identity the
    server no longer knows (merged so long ago that its forwarding expired) gives way to the identity of the logins
    (GetId with them)."""
    try:
        return await open_id_token(endpoint, identity_id, logins)
    except SyncClientError as exc:
        if exc.code != "ResourceNotFoundException":
            raise
    return await open_id_token(endpoint, await identity_of(endpoint, pool_id, logins), logins)


async def current_logins(logins: Logins) -> Mapping[str, str]:
    return await logins() if callable(logins) else logins


class LoginTokens:
    """The token provider of an identity signed in with logins: each call is an unsigned GetOpenIdToken with the
    identity id and the logins (``logins`` called first when it is a callable). An answer naming another identity
    (the logins were moved to it since) raises SyncClientError ``IdentityChanged``: sign in again."""

    def __init__(self, endpoint: str, identity_id: str, logins: Logins) -> None:
        self.endpoint = endpoint
        self.identity_id = identity_id
        self.logins = logins

    async def __call__(self) -> str:
        identity_id, token = await open_id_token(self.endpoint, self.identity_id, await current_logins(self.logins))
        if identity_id != self.identity_id:
            raise SyncClientError(IDENTITY_CHANGED, f"the logins now open identity {identity_id}: sign in again", 0)
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
        self._generation = 0  # rises with each use(): a token the previous provider gives afterwards is not kept

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
            while self._token is None or self._token == refused:
                generation = self._generation
                token = await self.token_provider()
                if generation == self._generation:  # else use() changed the provider meanwhile: ask the new one
                    self._token = token
                    return token
            return self._token

    def use(self, token_provider: TokenProvider, token: str | None = None) -> None:
        """Calls made from now on use tokens of ``token_provider`` only (``token``: its first one, when already
        known); a token the previous provider was still fetching is dropped."""
        self.token_provider = token_provider
        self._token = token
        self._generation += 1

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
