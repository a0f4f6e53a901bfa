"""The KMS operations on keys themselves: creation, description, listing, state, deletion, rotation and aliases.

Each checks the caller against the key it names (``Services.key_access``), calls the public view's parts
(``KeyService.public``: ``keys``, ``lifecycle``, ``permissions``) and shapes KMS's answer. CreateKey's own rules
(KeySpec or CustomerMasterKeySpec, single-Region AWS_KMS keys only) are checked here, before anything is made.
"""

from __future__ import annotations

from syncsvc.api.kms.inputs import (
    CreateAliasIn,
    CreateKeyIn,
    DescribeKeyIn,
    EnableKeyRotationIn,
    KeyIdIn,
    ListAliasesIn,
    ListKeysIn,
    ScheduleKeyDeletionIn,
)
from syncsvc.api.kms.markers import Markers
from syncsvc.api.kms.outputs import (
    AliasListEntry,
    Empty,
    KeyIdOut,
    KeyListEntry,
    KeyMetadataOut,
    KeyRotationStatusOut,
    ListAliasesOut,
    ListKeysOut,
    ScheduleKeyDeletionOut,
    key_metadata,
)
from syncsvc.api.operations import Call
from syncsvc.errors import KmsValidationError, UnsupportedOperationError
from syncsvc.kms.policy import principal_of
from syncsvc.runtime import Services

# --- keys -------------------------------------------------------------------------------------------------------------


async def create_key(services: Services, call: Call[CreateKeyIn]) -> KeyMetadataOut:
    """A Policy is checked before the key is made (MalformedPolicyDocumentException, the lockout check) and stored
    after it."""
    given = call.given
    if given.KeySpec is not None and given.CustomerMasterKeySpec is not None:
        raise KmsValidationError("You cannot specify both KeySpec and CustomerMasterKeySpec; use KeySpec")
    if given.Origin != "AWS_KMS" or given.MultiRegion:
        raise UnsupportedOperationError("syncsvc makes single-Region keys with its own key material (AWS_KMS) only")
    kms = services.kms.public
    principal = principal_of(call.caller)
    if given.Policy is not None:
        kms.permissions.check_policy(given.Policy, principal, bypass_lockout=given.BypassPolicyLockoutSafetyCheck)
    key = await kms.lifecycle.create_key(
        description=given.Description,
        spec=given.KeySpec or given.CustomerMasterKeySpec or "SYMMETRIC_DEFAULT",
        usage=given.KeyUsage,
        tags={tag.TagKey: tag.TagValue for tag in given.Tags},
    )
    if given.Policy is not None:
        await kms.permissions.put_key_policy(key.key_id, given.Policy, principal, bypass_lockout=True)
    return {"KeyMetadata": key_metadata(key)}


async def describe_key(services: Services, call: Call[DescribeKeyIn]) -> KeyMetadataOut:
    given = call.given
    await services.key_access.authorize(call.caller, "DescribeKey", given.KeyId, grant_tokens=given.GrantTokens)
    return {"KeyMetadata": key_metadata(await services.kms.public.keys.key(given.KeyId))}


async def list_keys(services: Services, call: Call[ListKeysIn]) -> ListKeysOut:
    given, keys, markers = call.given, services.kms.public.keys, Markers(services.signer, "ListKeys")
    key_ids = await keys.key_ids(after=markers.after(given.Marker), limit=given.Limit + 1)
    listed: list[tuple[KeyListEntry, str]] = [({"KeyId": i, "KeyArn": keys.key_arn(i)}, i) for i in key_ids]
    entries, page = markers.page(listed, given.Limit)
    return {"Keys": entries, **page}


async def enable_key(services: Services, call: Call[KeyIdIn]) -> Empty:
    await services.key_access.authorize(call.caller, "EnableKey", call.given.KeyId)
    await services.kms.public.lifecycle.enable(call.given.KeyId)
    return {}


async def disable_key(services: Services, call: Call[KeyIdIn]) -> Empty:
    await services.key_access.authorize(call.caller, "DisableKey", call.given.KeyId)
    await services.kms.public.lifecycle.disable(call.given.KeyId)
    return {}


async def schedule_key_deletion(services: Services, call: Call[ScheduleKeyDeletionIn]) -> ScheduleKeyDeletionOut:
    given = call.given
    await services.key_access.authorize(call.caller, "ScheduleKeyDeletion", given.KeyId)
    key = await services.kms.public.lifecycle.schedule_deletion(given.KeyId, given.PendingWindowInDays)
    assert key.deletion_ms is not None
    assert key.pending_window_days is not None
    return {
        "KeyId": key.arn,
        "DeletionDate": key.deletion_ms / 1000,
        "KeyState": key.state,
        "PendingWindowInDays": key.pending_window_days,
    }


async def cancel_key_deletion(services: Services, call: Call[KeyIdIn]) -> KeyIdOut:
    await services.key_access.authorize(call.caller, "CancelKeyDeletion", call.given.KeyId)
    key = await services.kms.public.lifecycle.cancel_deletion(call.given.KeyId)
    return {"KeyId": key.arn}


# --- rotation ---------------------------------------------------------------------------------------------------------


async def enable_key_rotation(services: Services, call: Call[EnableKeyRotationIn]) -> Empty:
    given = call.given
    await services.key_access.authorize(call.caller, "EnableKeyRotation", given.KeyId)
    await services.kms.public.lifecycle.enable_rotation(given.KeyId, given.RotationPeriodInDays)
    return {}


async def disable_key_rotation(services: Services, call: Call[KeyIdIn]) -> Empty:
    await services.key_access.authorize(call.caller, "DisableKeyRotation", call.given.KeyId)
    await services.kms.public.lifecycle.disable_rotation(call.given.KeyId)
    return {}


async def get_key_rotation_status(services: Services, call: Call[KeyIdIn]) -> KeyRotationStatusOut:
    """A key pending deletion reports rotation off (KMS does not rotate it) and gets its status back if the deletion
    is cancelled."""
    await services.key_access.authorize(call.caller, "GetKeyRotationStatus", call.given.KeyId)
    key = await services.kms.public.keys.key(call.given.KeyId)
    enabled = key.rotation_enabled and key.state != "PendingDeletion"
    output: KeyRotationStatusOut = {"KeyRotationEnabled": enabled, "KeyId": key.key_id}
    if enabled and key.next_rotation_ms is not None:
        output["RotationPeriodInDays"] = key.rotation_period_days
        output["NextRotationDate"] = key.next_rotation_ms / 1000
    return output


async def rotate_key_on_demand(services: Services, call: Call[KeyIdIn]) -> KeyIdOut:
    await services.key_access.authorize(call.caller, "RotateKeyOnDemand", call.given.KeyId)
    key = await services.kms.public.lifecycle.rotate_on_demand(call.given.KeyId)
    return {"KeyId": key.key_id}


# --- aliases ----------------------------------------------------------------------------------------------------------


async def create_alias(services: Services, call: Call[CreateAliasIn]) -> Empty:
    await services.key_access.authorize(call.caller, "CreateAlias", call.given.TargetKeyId)
    await services.kms.public.lifecycle.create_alias(call.given.AliasName, call.given.TargetKeyId)
    return {}


async def list_aliases(services: Services, call: Call[ListAliasesIn]) -> ListAliasesOut:
    given, kms, markers = call.given, services.kms.public, Markers(services.signer, "ListAliases")
    after = markers.after(given.Marker)
    aliases = [alias for alias in await kms.lifecycle.aliases(given.KeyId) if after is None or alias.name > after]
    listed: list[tuple[AliasListEntry, str]] = [
        ({"AliasName": alias.name, "AliasArn": kms.keys.alias_arn(alias.name), "TargetKeyId": alias.key_id}, alias.name)
        for alias in aliases[: given.Limit + 1]
    ]
    entries, page = markers.page(listed, given.Limit)
    return {"Aliases": entries, **page}
