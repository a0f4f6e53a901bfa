"""The identity browser, like Cognito's: find an identity by its id or by a login of a pool (or page through a
pool's identities); see its logins, usage and datasets; a dataset's records with their values (opened, as the API
gives them to a developer), sync counts and version vectors, refreshed live while the page is open; delete a
dataset or the identity, after a confirmation page. Reads and deletions are the API's operations
(``views.perform``); finding by login asks the broker which identity a login is linked to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web

from syncsvc.api import identity, sync
from syncsvc.api.console.sessions import Session
from syncsvc.api.console.views import change, page, perform, redirect, refusal, render
from syncsvc.api.messages import SERVICES
from syncsvc.errors import SyncsvcError
from syncsvc.model import IdentityProfile

PAGE_SIZE = 60
#: The most records a dataset page shows (a dataset holds at most 1,024 by default: one ListRecords page).
MAX_RECORDS = 1024


def _identity_url(identity_id: str) -> str:
    return f"/console/identities/{quote(identity_id, safe='')}"


@page
async def identities_page(request: web.Request, session: Session) -> web.StreamResponse:
    """The search form; with ``id``, that identity; with ``pool``, ``provider`` and ``subject``, the identity that
    login is linked to; with ``pool`` alone, a page of the pool's identities."""
    query = request.query
    pool_id, error, listed = query.get("pool", "").strip(), "", None
    services = request.app[SERVICES]
    try:
        if identity_id := query.get("id", "").strip():
            await services.broker.describe(identity_id)
            raise redirect(_identity_url(identity_id))
        if pool_id and (subject := query.get("subject", "").strip()):
            owner = await services.broker.owner_of(pool_id, query.get("provider", "").strip(), subject)
            if owner is None:
                error = "No identity of this pool is linked to that login."
            else:
                raise redirect(_identity_url(owner))
        elif pool_id:
            listing: dict[str, Any] = {"IdentityPoolId": pool_id, "MaxResults": PAGE_SIZE}
            if next_token := query.get("next"):
                listing["NextToken"] = next_token
            listed = await perform(request, session, identity.SURFACE, "ListIdentities", listing)
    except SyncsvcError as refused:
        error = refusal(refused)
    pools = await perform(request, session, identity.SURFACE, "ListIdentityPools", {"MaxResults": PAGE_SIZE})
    return render(
        request,
        "identities.html",
        session,
        status=400 if error and listed is None and query else 200,
        pools=pools["IdentityPools"],
        query=dict(query),
        listed=listed,
        error=error,
    )


async def _profile(request: web.Request) -> IdentityProfile:
    return await request.app[SERVICES].broker.describe(request.match_info["identity"])


def _labels(profile: IdentityProfile, dataset: str | None = None) -> dict[str, str]:
    labels = {"IdentityPoolId": profile.identity_pool_id, "IdentityId": profile.identity_id}
    if dataset is not None:
        labels["DatasetName"] = dataset
    return labels


@page
async def identity_page(request: web.Request, session: Session) -> web.StreamResponse:
    try:
        profile = await _profile(request)
    except SyncsvcError as refused:
        return render(request, "missing.html", session, status=404, message=refusal(refused))
    labels = _labels(profile)
    usage = await perform(request, session, sync.SURFACE, "DescribeIdentityUsage", labels=labels)
    datasets: list[dict[str, Any]] = []
    next_token: str | None = None
    while len(datasets) < PAGE_SIZE * 10:
        query: dict[str, int | str | None] = {"maxResults": PAGE_SIZE, "nextToken": next_token}
        listed = await perform(request, session, sync.SURFACE, "ListDatasets", labels=labels, query=query)
        datasets += listed["Datasets"]
        next_token = listed.get("NextToken")
        if next_token is None:
            break
    return render(
        request,
        "identity.html",
        session,
        profile=profile,
        logins=sorted(profile.logins),
        usage=usage["IdentityUsage"],
        datasets=datasets,
        url=_identity_url(profile.identity_id),
    )


@page
async def dataset_page(request: web.Request, session: Session) -> web.StreamResponse:
    """A dataset's records; ``?fragment=1`` answers the records table alone (the page's script asks for it every
    two seconds and swaps it in when the dataset's sync count changed)."""
    dataset = request.match_info["dataset"]
    try:
        profile = await _profile(request)
        labels = _labels(profile, dataset)
        query: dict[str, int | str | None] = {"maxResults": MAX_RECORDS}
        listed = await perform(request, session, sync.SURFACE, "ListRecords", labels=labels, query=query)
    except SyncsvcError as refused:
        return render(request, "missing.html", session, status=404, message=refusal(refused))
    template = "records.html" if request.query.get("fragment") == "1" else "dataset.html"
    return render(
        request,
        template,
        session,
        profile=profile,
        dataset=dataset,
        listed=listed,
        url=_identity_url(profile.identity_id),
        dataset_url=f"{_identity_url(profile.identity_id)}/datasets/{quote(dataset, safe='')}",
    )


@page
async def confirm_delete_dataset(request: web.Request, session: Session) -> web.StreamResponse:
    identity_id, dataset = request.match_info["identity"], request.match_info["dataset"]
    here = f"{_identity_url(identity_id)}/datasets/{quote(dataset, safe='')}"
    return render(
        request,
        "confirm.html",
        session,
        what=f"dataset {dataset} of identity {identity_id}",
        consequence="Its records are deleted on every device's next sync. This cannot be undone.",
        action=here + "/delete",
        cancel=here,
    )


@change
async def delete_dataset(request: web.Request, session: Session, form: Mapping[str, str]) -> web.StreamResponse:
    try:
        profile = await _profile(request)
        labels = _labels(profile, request.match_info["dataset"])
        await perform(request, session, sync.SURFACE, "DeleteDataset", labels=labels)
    except SyncsvcError as refused:
        return render(request, "missing.html", session, status=404, message=refusal(refused))
    raise redirect(_identity_url(profile.identity_id) + "?note=deleted")


@page
async def confirm_delete_identity(request: web.Request, session: Session) -> web.StreamResponse:
    identity_id = request.match_info["identity"]
    return render(
        request,
        "confirm.html",
        session,
        what=f"identity {identity_id}",
        consequence="Its logins are unlinked and all its datasets deleted. This cannot be undone.",
        action=_identity_url(identity_id) + "/delete",
        cancel=_identity_url(identity_id),
    )


@change
async def delete_identity(request: web.Request, session: Session, form: Mapping[str, str]) -> web.StreamResponse:
    identity_id = request.match_info["identity"]
    try:
        result = await perform(
            request, session, identity.SURFACE, "DeleteIdentities", {"IdentityIdsToDelete": [identity_id]}
        )
    except SyncsvcError as refused:
        return render(request, "missing.html", session, status=400, message=refusal(refused))
    if result["UnprocessedIdentityIds"]:
        failed = result["UnprocessedIdentityIds"][0]
        return render(request, "missing.html", session, status=400, message=f"Not deleted: {failed['ErrorCode']}")
    raise redirect("/console/identities?note=deleted")


def routes() -> list[web.RouteDef]:
    one = "/console/identities/{identity}"
    dataset = one + "/datasets/{dataset}"
    return [
        web.get("/console/identities", identities_page),
        web.get(one, identity_page),
        web.get(one + "/delete", confirm_delete_identity),
        web.post(one + "/delete", delete_identity),
        web.get(dataset, dataset_page),
        web.get(dataset + "/delete", confirm_delete_dataset),
        web.post(dataset + "/delete", delete_dataset),
    ]
