"""Identity pools in the console: the list with each pool's usage, a new pool, one pool's settings (guest access,
login providers, Cognito Streams, push sync, Cognito Events with the registered triggers to choose from, bulk
publish) and its deletion. Every change is the API operation of the same name (``views.perform``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from syncsvc.api import identity, sync
from syncsvc.api.console.sessions import Session
from syncsvc.api.console.views import change, page, perform, redirect, refusal, render
from syncsvc.api.messages import SERVICES
from syncsvc.errors import SyncsvcError

PAGE_SIZE = 60
#: The role a pool's push sync names when the console turns it on without one (syncsvc assumes no role: Cognito's
#: "configured" is what counts).
DEFAULT_PUSH_ROLE = "arn:aws:iam::000000000000:role/syncsvc-push-sync"


@page
async def pools_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _pools(request, session)


async def _pools(request: web.Request, session: Session, *, error: str = "", status: int = 200) -> web.Response:
    listing: dict[str, Any] = {"MaxResults": PAGE_SIZE}
    if next_token := request.query.get("next"):
        listing["NextToken"] = next_token
    try:
        listed = await perform(request, session, identity.SURFACE, "ListIdentityPools", listing)
    except SyncsvcError as refused:
        listed, error, status = {"IdentityPools": []}, refusal(refused), 400
    ids = [pool["IdentityPoolId"] for pool in listed["IdentityPools"]]
    described = await asyncio.gather(
        *(
            perform(request, session, sync.SURFACE, "DescribeIdentityPoolUsage", labels={"IdentityPoolId": pool_id})
            for pool_id in ids
        )
    )  # at most PAGE_SIZE at once, together: the page waits for one round of reads, not one per pool
    usage = {pool_id: found["IdentityPoolUsage"] for pool_id, found in zip(ids, described, strict=True)}
    return render(
        request,
        "pools.html",
        session,
        status=status,
        pools=listed["IdentityPools"],
        usage=usage,
        next=listed.get("NextToken"),
        error=error,
    )


@change
async def create_pool(request: web.Request, session: Session, form: Mapping[str, str]) -> web.StreamResponse:
    spec = {"IdentityPoolName": form.get("name", ""), "AllowUnauthenticatedIdentities": form.get("guests") == "on"}
    try:
        created = await perform(request, session, identity.SURFACE, "CreateIdentityPool", spec)
    except SyncsvcError as refused:
        return await _pools(request, session, error=refusal(refused), status=400)
    raise redirect(f"/console/pools/{created['IdentityPoolId']}?note=created")


@page
async def pool_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _pool(request, session)


async def _pool(request: web.Request, session: Session, *, error: str = "", status: int = 200) -> web.Response:
    pool_id = request.match_info["pool"]
    labels = {"IdentityPoolId": pool_id}
    try:
        described = await perform(request, session, identity.SURFACE, "DescribeIdentityPool", labels)
    except SyncsvcError as refused:
        return render(request, "missing.html", session, status=404, message=refusal(refused))
    configuration, events, usage, bulk = await asyncio.gather(
        *(
            perform(request, session, sync.SURFACE, name, labels=labels)
            for name in (
                "GetIdentityPoolConfiguration",
                "GetCognitoEvents",
                "DescribeIdentityPoolUsage",
                "GetBulkPublishDetails",
            )
        )
    )
    return render(
        request,
        "pool.html",
        session,
        status=status,
        pool=described,
        providers="\n".join(
            f"{name} = {app}" for name, app in (described.get("SupportedLoginProviders") or {}).items()
        ),
        streams=configuration.get("CognitoStreams") or {},
        push=configuration.get("PushSync") or {},
        events=events["Events"],
        triggers=request.app[SERVICES].triggers.names(),
        usage=usage["IdentityPoolUsage"],
        bulk=bulk,
        error=error,
    )


def _providers(text: str) -> dict[str, str]:
    """``provider = app id`` lines as SupportedLoginProviders (a line without ``=`` is a provider with no app id:
    the API refuses it with its own message)."""
    providers = {}
    for line in text.splitlines():
        if line.strip():
            name, _, app = line.partition("=")
            providers[name.strip()] = app.strip()
    return providers


async def _apply(
    request: web.Request, session: Session, surface_name: str, operation: str, body: Mapping[str, Any]
) -> web.StreamResponse:
    """Runs ``operation`` on the page's pool; back to the pool page with "saved", or the page with the refusal."""
    pool_id = request.match_info["pool"]
    surface = identity.SURFACE if surface_name == "identity" else sync.SURFACE
    labels = {"IdentityPoolId": pool_id}
    try:
        if surface is identity.SURFACE:
            await perform(request, session, surface, operation, {**labels, **body})
        else:
            await perform(request, session, surface, operation, body, labels=labels)
    except SyncsvcError as refused:
        return await _pool(request, session, error=refusal(refused), status=400)
    raise redirect(f"/console/pools/{pool_id}?note=saved")


@change
async def save_pool(request: web.Request, session: Session, form: Mapping[str, str]) -> web.StreamResponse:
    """UpdateIdentityPool with the form's name, guest access, login providers and developer provider; the members
    the form does not show are kept as they are."""
    pool_id = request.match_info["pool"]
    try:
        kept = await perform(request, session, identity.SURFACE, "DescribeIdentityPool", {"IdentityPoolId": pool_id})
    except SyncsvcError as refused:
        return render(request, "missing.html", session, status=404, message=refusal(refused))
    spec = {
        **kept,
        "IdentityPoolName": form.get("name", ""),
        "AllowUnauthenticatedIdentities": form.get("guests") == "on",
        "SupportedLoginProviders": _providers(form.get("providers", "")),
    }
    spec.pop("IdentityPoolId")
    if developer := form.get("developer", "").strip():
        spec["DeveloperProviderName"] = developer
    return await _apply(request, session, "identity", "UpdateIdentityPool", spec)


@change
async def save_streams(request: web.Request, session: Session, form: Mapping[str, str]) -> web.StreamResponse:
    status = "ENABLED" if form.get("enabled") == "on" else "DISABLED"
    streams: dict[str, str] = {"StreamingStatus": status}
    if topic := form.get("topic", "").strip():
        streams["StreamName"] = topic
    return await _apply(request, session, "sync", "SetIdentityPoolConfiguration", {"CognitoStreams": streams})


@change
async def save_push(request: web.Request, session: Session, form: Mapping[str, str]) -> web.StreamResponse:
    push = {"RoleArn": form.get("role", "").strip() or DEFAULT_PUSH_ROLE} if form.get("enabled") == "on" else {}
    return await _apply(request, session, "sync", "SetIdentityPoolConfiguration", {"PushSync": push})


@change
async def save_events(request: web.Request, session: Session, form: Mapping[str, str]) -> web.StreamResponse:
    return await _apply(
        request, session, "sync", "SetCognitoEvents", {"Events": {"SyncTrigger": form.get("trigger", "")}}
    )


@change
async def start_bulk_publish(request: web.Request, session: Session, form: Mapping[str, str]) -> web.StreamResponse:
    pool_id = request.match_info["pool"]
    try:
        await perform(request, session, sync.SURFACE, "BulkPublish", labels={"IdentityPoolId": pool_id})
    except SyncsvcError as refused:
        return await _pool(request, session, error=refusal(refused), status=400)
    raise redirect(f"/console/pools/{pool_id}?note=publishing")


@page
async def confirm_delete_pool(request: web.Request, session: Session) -> web.StreamResponse:
    pool_id = request.match_info["pool"]
    return render(
        request,
        "confirm.html",
        session,
        what=f"identity pool {pool_id}",
        consequence="Every identity of the pool is deleted with all its datasets. This cannot be undone.",
        action=f"/console/pools/{pool_id}/delete",
        cancel=f"/console/pools/{pool_id}",
    )


@change
async def delete_pool(request: web.Request, session: Session, form: Mapping[str, str]) -> web.StreamResponse:
    pool_id = request.match_info["pool"]
    try:
        await perform(request, session, identity.SURFACE, "DeleteIdentityPool", {"IdentityPoolId": pool_id})
    except SyncsvcError as refused:
        return await _pool(request, session, error=refusal(refused), status=400)
    raise redirect("/console/pools?note=deleted")


def routes() -> list[web.RouteDef]:
    base = "/console/pools/{pool}"
    return [
        web.get("/console/pools", pools_page),
        web.post("/console/pools", create_pool),
        web.get(base, pool_page),
        web.post(base, save_pool),
        web.post(base + "/streams", save_streams),
        web.post(base + "/push", save_push),
        web.post(base + "/events", save_events),
        web.post(base + "/bulkpublish", start_bulk_publish),
        web.get(base + "/delete", confirm_delete_pool),
        web.post(base + "/delete", delete_pool),
    ]
