"""The grants a principal may retire, across every key of a view (ListRetirableGrants).

KMS keeps grants with their key; so does syncsvc (``g:<grant id>`` fields of the key's hash), so this walks the keys
in key id order, one HGETALL each, and keeps the grants whose RetiringPrincipal is the principal asked for, in (key
id, grant id) order. Keys deleted while walked are skipped. A view without internal keys (the public API's) never
shows their grants. It reads keys through the compare-and-set core (``syncsvc.kms.keystore``) and writes nothing.
"""

from __future__ import annotations

from syncsvc.errors import KmsNotFoundError
from syncsvc.kms.keystore import MasterKeys
from syncsvc.kms.policy import Grant

#: Keys read per page of the key index.
_KEY_PAGE = 100


async def retirable_grants(
    keys: MasterKeys, principal: str, *, after: tuple[str, str] | None, limit: int
) -> list[Grant]:
    """At most ``limit`` grants that ``principal`` may retire, in (key id, grant id) order, after ``after``."""
    found: list[Grant] = []
    key_after = None
    if after is not None:
        found += await _key_grants(keys, after[0], principal, after_grant=after[1])
        key_after = after[0]
    while len(found) < limit:
        page = await keys.key_ids(after=key_after, limit=_KEY_PAGE)
        for key_id in page:
            found += await _key_grants(keys, key_id, principal)
        if len(page) < _KEY_PAGE:
            break
        key_after = page[-1]
    return found[:limit]


async def _key_grants(keys: MasterKeys, key_id: str, principal: str, *, after_grant: str = "") -> list[Grant]:
    try:
        loaded = await keys.load(key_id)
    except KmsNotFoundError:
        return []
    mine = [grant for grant in loaded.grants if grant.retiring == principal and grant.grant_id > after_grant]
    return sorted(mine, key=lambda grant: grant.grant_id)
