"""The console's KMS page: every key of the key service with its state, origin, usage and spec, whether it rotates
automatically, when a scheduled deletion falls due, and its aliases; one key's page with its metadata in full.
Read-only: keys are managed through the KMS API (``aws kms``), whose operations this page runs to read them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from syncsvc.api import kms
from syncsvc.api.console.sessions import Session
from syncsvc.api.console.views import page, perform, refusal, render
from syncsvc.errors import SyncsvcError

#: The keys and aliases a page shows (one ListKeys / ListAliases page each).
PAGE_SIZE = 100


@page
async def keys_page(request: web.Request, session: Session) -> web.StreamResponse:
    listing: dict[str, Any] = {"Limit": PAGE_SIZE}
    if marker := request.query.get("next"):
        listing["Marker"] = marker
    listed = await perform(request, session, kms.SURFACE, "ListKeys", listing)
    aliases: dict[str, list[str]] = {}
    for alias in (await perform(request, session, kms.SURFACE, "ListAliases", {"Limit": PAGE_SIZE}))["Aliases"]:
        if "TargetKeyId" in alias:
            aliases.setdefault(alias["TargetKeyId"], []).append(alias["AliasName"])
    keys = []
    for entry in listed["Keys"]:
        named = {"KeyId": entry["KeyId"]}
        metadata = (await perform(request, session, kms.SURFACE, "DescribeKey", named))["KeyMetadata"]
        try:  # None: a key that cannot rotate automatically (asymmetric, HMAC, imported, in a custom key store)
            status = await perform(request, session, kms.SURFACE, "GetKeyRotationStatus", named)
            rotating = status["KeyRotationEnabled"]
        except SyncsvcError:
            rotating = None
        keys.append({"metadata": metadata, "rotating": rotating, "aliases": sorted(aliases.get(entry["KeyId"], []))})
    return render(
        request,
        "keys.html",
        session,
        keys=keys,
        next=listed.get("NextMarker") if listed.get("Truncated") else None,
    )


@page
async def key_page(request: web.Request, session: Session) -> web.StreamResponse:
    key_id = request.match_info["key"]
    try:
        described = await perform(request, session, kms.SURFACE, "DescribeKey", {"KeyId": key_id})
    except SyncsvcError as refused:
        return render(request, "missing.html", session, status=404, message=refusal(refused))
    return render(request, "key.html", session, metadata=described["KeyMetadata"])


def routes() -> list[web.RouteDef]:
    return [web.get("/console/keys", keys_page), web.get("/console/keys/{key}", key_page)]
