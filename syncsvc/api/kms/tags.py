"""The KMS operations on a key's tags: TagResource, UntagResource and ListResourceTags.

Each takes the key by key id or key ARN only (an alias is NotFoundException, as KMS answers it), checks the caller
against the key (``Services.key_access``), applies KMS's tag rules through ``KeyService.public.lifecycle``
(``syncsvc.kms.tags``) and shapes KMS's answer. Tags live in the key's own hash, so they go with the key when it is
deleted.
"""

from __future__ import annotations

from syncsvc.api.kms.inputs import ListResourceTagsIn, TagResourceIn, UntagResourceIn
from syncsvc.api.kms.markers import Markers
from syncsvc.api.kms.outputs import Empty, ListResourceTagsOut, TagEntry
from syncsvc.api.operations import Call
from syncsvc.runtime import Services

#: ListResourceTags answers at most this many tags per page, whatever the Limit (KMS's reference: 1 to 50).
_PAGE_MOST = 50


async def tag_resource(services: Services, call: Call[TagResourceIn]) -> Empty:
    given, kms = call.given, services.kms.public
    key_id = await kms.keys.key_id_only(given.KeyId)
    await services.key_access.authorize(call.caller, "TagResource", key_id)
    await kms.lifecycle.tag(key_id, [(tag.TagKey, tag.TagValue) for tag in given.Tags])
    return {}


async def untag_resource(services: Services, call: Call[UntagResourceIn]) -> Empty:
    given, kms = call.given, services.kms.public
    key_id = await kms.keys.key_id_only(given.KeyId)
    await services.key_access.authorize(call.caller, "UntagResource", key_id)
    await kms.lifecycle.untag(key_id, given.TagKeys)
    return {}


async def list_resource_tags(services: Services, call: Call[ListResourceTagsIn]) -> ListResourceTagsOut:
    """In tag key order."""
    given, kms, markers = call.given, services.kms.public, Markers(services.signer, "ListResourceTags")
    key_id = await kms.keys.key_id_only(given.KeyId)
    await services.key_access.authorize(call.caller, "ListResourceTags", key_id)
    key = await kms.keys.key(key_id)
    after = markers.after(given.Marker)
    limit = min(given.Limit, _PAGE_MOST)
    listed: list[tuple[TagEntry, str]] = [
        ({"TagKey": name, "TagValue": value}, name)
        for name, value in sorted(key.tags.items())
        if after is None or name > after
    ]
    entries, page = markers.page(listed[: limit + 1], limit)
    return {"Tags": entries, **page}
