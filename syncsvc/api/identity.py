"""Cognito Identity (json 1.1): ``POST /`` routed by ``X-Amz-Target: AWSCognitoIdentityService.<Op>``.

This issue's subset is the identity-pool resource, for developer credentials only. Each operation is a function
from its validated input to its output dict; :data:`OPERATIONS` is the surface's table of contents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from syncsvc.api.middleware import caller_of
from syncsvc.api.protocol import AMZ_JSON, POOLS, SIGNER, parse, respond
from syncsvc.errors import NotAuthorizedError, UnknownTargetError
from syncsvc.identity.pools import IdentityPool, IdentityPoolSpec, PoolDirectory
from syncsvc.tokens import TokenSigner

TARGET_PREFIX = "AWSCognitoIdentityService."
PoolId = Annotated[str, StringConstraints(min_length=1, max_length=55, pattern=r"^[\w-]+:[0-9a-f-]+$")]


class PoolIdIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    IdentityPoolId: PoolId


class ListIdentityPoolsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    MaxResults: Annotated[int, Field(ge=1, le=60)]
    NextToken: Annotated[str, StringConstraints(min_length=1)] | None = None


Operation = Callable[[web.Request, PoolDirectory], Awaitable[dict[str, Any]]]
_PAGE_PURPOSE = "ListIdentityPools"


async def create_identity_pool(request: web.Request, pools: PoolDirectory) -> dict[str, Any]:
    return (await pools.create(await parse(request, IdentityPoolSpec))).wire()


async def describe_identity_pool(request: web.Request, pools: PoolDirectory) -> dict[str, Any]:
    return (await pools.describe((await parse(request, PoolIdIn)).IdentityPoolId)).wire()


async def update_identity_pool(request: web.Request, pools: PoolDirectory) -> dict[str, Any]:
    return (await pools.update(await parse(request, IdentityPool))).wire()


async def delete_identity_pool(request: web.Request, pools: PoolDirectory) -> dict[str, Any]:
    await pools.delete((await parse(request, PoolIdIn)).IdentityPoolId)
    return {}


async def list_identity_pools(request: web.Request, pools: PoolDirectory) -> dict[str, Any]:
    given = await parse(request, ListIdentityPoolsIn)
    signer: TokenSigner = request.app[SIGNER]
    after = None
    if given.NextToken:
        after = str(signer.open(_PAGE_PURPOSE, given.NextToken, name="NextToken")["a"])
    page = await pools.page(after=after, limit=given.MaxResults + 1)
    shown = page[: given.MaxResults]
    output: dict[str, Any] = {
        "IdentityPools": [{"IdentityPoolId": p.IdentityPoolId, "IdentityPoolName": p.IdentityPoolName} for p in shown]
    }
    if len(page) > given.MaxResults:
        output["NextToken"] = signer.seal(_PAGE_PURPOSE, {"a": shown[-1].IdentityPoolId})
    return output


#: Operation name -> (handler, needs developer credentials)
OPERATIONS: dict[str, tuple[Operation, bool]] = {
    "CreateIdentityPool": (create_identity_pool, True),
    "DescribeIdentityPool": (describe_identity_pool, True),
    "UpdateIdentityPool": (update_identity_pool, True),
    "ListIdentityPools": (list_identity_pools, True),
    "DeleteIdentityPool": (delete_identity_pool, True),
}


async def dispatch(request: web.Request) -> web.Response:
    target = request.headers.get("X-Amz-Target", "")
    name = target.removeprefix(TARGET_PREFIX)
    if not target.startswith(TARGET_PREFIX) or name not in OPERATIONS:
        raise UnknownTargetError(f"Operation '{target[:100]}' is not supported")
    operation, developer_only = OPERATIONS[name]
    if developer_only and not caller_of(request).is_developer:
        raise NotAuthorizedError(f"{name} needs developer credentials")
    return respond(await operation(request, request.app[POOLS]), content_type=AMZ_JSON)
