"""The KMS operations on keys themselves: creation, description, listing, state, deletion, rotation (and its
history), aliases and the names of key policies.

Each checks the caller against the key it names (``Services.key_access``), calls the public view's parts
(``KeyService.public``: ``keys``, ``lifecycle``, ``permissions``) and shapes KMS's answer. CreateKey's own rules
(KeySpec or CustomerMasterKeySpec, single-Region keys only, Origin AWS_KMS or EXTERNAL) are checked here, before
anything is made.

Where KMS's reference says a KeyId takes "the key ID or key ARN" (every operation here but DescribeKey), an alias
name or alias ARN is NotFoundException before anything else (:func:`_key_id`), as KMS answers it: the operation never
acts on the key the alias names.
"""

from __future__ import annotations

import hashlib

from syncsvc.api.kms.inputs import (
    CreateAliasIn,
    CreateKeyIn,
    DeleteAliasIn,
    DescribeKeyIn,
    EnableKeyRotationIn,
    KeyIdIn,
    ListAliasesIn,
    ListKeyPoliciesIn,
    ListKeyRotationsIn,
    ListKeysIn,
    ScheduleKeyDeletionIn,
    UpdateAliasIn,
    UpdateKeyDescriptionIn,
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
    ListKeyPoliciesOut,
    ListKeyRotationsOut,
    ListKeysOut,
    RotationsListEntry,
    ScheduleKeyDeletionOut,
    key_metadata,
)
from syncsvc.api.operations import Call
from syncsvc.errors import KmsValidationError, UnsupportedOperationError
from syncsvc.kms.model import MasterKey
from syncsvc.kms.policy import principal_of
from syncsvc.runtime import Services

#: What CreateKey and ReplicateKey answer for a multi-Region key.
ONE_REGION = (
    "Multi-Region keys are not supported: this syncsvc deployment holds keys of one region only ({region}), so "
    "there is no other region to replicate a key to"
)


async def _key_id(services: Services, key_ref: str) -> str:
    """The key id of a KeyId that KMS takes as a key id or key ARN only (NotFoundException for an alias)."""
    return await services.kms.public.keys.key_id_only(key_ref)


# --- keys -------------------------------------------------------------------------------------------------------------


async def create_key(services: Services, call: Call[CreateKeyIn]) -> KeyMetadataOut:
    """A Policy is checked before the key is made (MalformedPolicyDocumentException, the lockout check) and stored
    after it."""
    given = call.given
    if given.KeySpec is not None and given.CustomerMasterKeySpec is not None:
        raise KmsValidationError("You cannot specify both KeySpec and CustomerMasterKeySpec; use KeySpec")
    if given.MultiRegion:
        raise UnsupportedOperationError(ONE_REGION.format(region=services.kms.public.keys.region))
    if given.Origin not in ("AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM"):
        raise UnsupportedOperationError(
            "syncsvc makes keys with its own key material (AWS_KMS), for imported key material (EXTERNAL) or in a "
            "custom key store on a PKCS#11 token (AWS_CLOUDHSM) only"
        )
    if given.Origin == "EXTERNAL" and given.CustomKeyStoreId is not None:
        raise UnsupportedOperationError("Key material cannot be imported into a KMS key in a custom key store")
    if (given.Origin == "AWS_CLOUDHSM") != (given.CustomKeyStoreId is not None):
        raise UnsupportedOperationError(
            "A KMS key is made in a custom key store with both Origin AWS_CLOUDHSM and the store's CustomKeyStoreId"
        )
    kms = services.kms.public
    principal = principal_of(call.caller)
    if given.Policy is not None:
        kms.permissions.check_policy(given.Policy, principal, bypass_lockout=given.BypassPolicyLockoutSafetyCheck)
    key = await kms.lifecycle.create_key(
        description=given.Description,
        spec=given.KeySpec or given.CustomerMasterKeySpec or "SYMMETRIC_DEFAULT",
        usage=given.KeyUsage,
        tags=[(tag.TagKey, tag.TagValue) for tag in given.Tags],
        origin=given.Origin,
        custom_key_store_id=given.CustomKeyStoreId,
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
    key_id = await _key_id(services, call.given.KeyId)
    await services.key_access.authorize(call.caller, "EnableKey", key_id)
    await services.kms.public.lifecycle.enable(key_id)
    return {}


async def disable_key(services: Services, call: Call[KeyIdIn]) -> Empty:
    key_id = await _key_id(services, call.given.KeyId)
    await services.key_access.authorize(call.caller, "DisableKey", key_id)
    await services.kms.public.lifecycle.disable(key_id)
    return {}


async def schedule_key_deletion(services: Services, call: Call[ScheduleKeyDeletionIn]) -> ScheduleKeyDeletionOut:
    given = call.given
    key_id = await _key_id(services, given.KeyId)
    await services.key_access.authorize(call.caller, "ScheduleKeyDeletion", key_id)
    key = await services.kms.public.lifecycle.schedule_deletion(key_id, given.PendingWindowInDays)
    assert key.deletion_ms is not None
    assert key.pending_window_days is not None
    return {
        "KeyId": key.arn,
        "DeletionDate": key.deletion_ms / 1000,
        "KeyState": key.state,
        "PendingWindowInDays": key.pending_window_days,
    }


async def cancel_key_deletion(services: Services, call: Call[KeyIdIn]) -> KeyIdOut:
    key_id = await _key_id(services, call.given.KeyId)
    await services.key_access.authorize(call.caller, "CancelKeyDeletion", key_id)
    key = await services.kms.public.lifecycle.cancel_deletion(key_id)
    return {"KeyId": key.arn}


# --- rotation ---------------------------------------------------------------------------------------------------------


async def enable_key_rotation(services: Services, call: Call[EnableKeyRotationIn]) -> Empty:
    given = call.given
    key_id = await _key_id(services, given.KeyId)
    await services.key_access.authorize(call.caller, "EnableKeyRotation", key_id)
    await services.kms.public.lifecycle.enable_rotation(key_id, given.RotationPeriodInDays)
    return {}


async def disable_key_rotation(services: Services, call: Call[KeyIdIn]) -> Empty:
    key_id = await _key_id(services, call.given.KeyId)
    await services.key_access.authorize(call.caller, "DisableKeyRotation", key_id)
    await services.kms.public.lifecycle.disable_rotation(key_id)
    return {}


async def get_key_rotation_status(services: Services, call: Call[KeyIdIn]) -> KeyRotationStatusOut:
    """A key pending deletion reports rotation off (KMS does not rotate it) and gets its status back if the deletion
    is cancelled."""
    key_id = await _key_id(services, call.given.KeyId)
    await services.key_access.authorize(call.caller, "GetKeyRotationStatus", key_id)
    key = await services.kms.public.keys.key(key_id)
    enabled = key.rotation_enabled and key.state != "PendingDeletion"
    output: KeyRotationStatusOut = {"KeyRotationEnabled": enabled, "KeyId": key.key_id}
    if enabled and key.next_rotation_ms is not None:
        output["RotationPeriodInDays"] = key.rotation_period_days
        output["NextRotationDate"] = key.next_rotation_ms / 1000
    return output


async def rotate_key_on_demand(services: Services, call: Call[KeyIdIn]) -> KeyIdOut:
    key_id = await _key_id(services, call.given.KeyId)
    await services.key_access.authorize(call.caller, "RotateKeyOnDemand", key_id)
    key = await services.kms.public.lifecycle.rotate_on_demand(key_id)
    return {"KeyId": key.key_id}


async def list_key_rotations(services: Services, call: Call[ListKeyRotationsIn]) -> ListKeyRotationsOut:
    """The completed rotations, oldest first; with IncludeKeyMaterial ALL_KEY_MATERIAL, the key's first material
    too (without a RotationDate or RotationType, as KMS lists it)."""
    given, markers = call.given, Markers(services.signer, "ListKeyRotations")
    key_id = await _key_id(services, given.KeyId)
    await services.key_access.authorize(call.caller, "ListKeyRotations", key_id)
    key, rotations = await services.kms.public.lifecycle.rotations(key_id)
    after = markers.after(given.Marker)
    listed: list[tuple[RotationsListEntry, str]] = []
    if given.IncludeKeyMaterial == "ALL_KEY_MATERIAL":
        listed.append((_material_entry(key, 1), "1"))
    for rotation in rotations:
        entry = _material_entry(key, rotation.version)
        entry["RotationDate"] = rotation.date_ms / 1000
        entry["RotationType"] = rotation.kind
        listed.append((entry, str(rotation.version)))
    shown = [(entry, version) for entry, version in listed if after is None or int(version) > int(after)]
    entries, page = markers.page(shown[: given.Limit + 1], given.Limit)
    return {"Rotations": entries, **page}


def _material_entry(key: MasterKey, version: int) -> RotationsListEntry:
    """One key material of ``key``: its id (a digest of key id and version: stable, reveals nothing) and state."""
    material_id = hashlib.sha256(f"{key.key_id}:{version}".encode()).hexdigest()
    state = "CURRENT" if version == key.current_version else "NON_CURRENT"
    return {"KeyId": key.key_id, "KeyMaterialId": material_id, "KeyMaterialState": state}


# --- description and key policy names ---------------------------------------------------------------------------------


async def update_key_description(services: Services, call: Call[UpdateKeyDescriptionIn]) -> Empty:
    key_id = await _key_id(services, call.given.KeyId)
    await services.key_access.authorize(call.caller, "UpdateKeyDescription", key_id)
    await services.kms.public.lifecycle.update_description(key_id, call.given.Description)
    return {}


async def list_key_policies(services: Services, call: Call[ListKeyPoliciesIn]) -> ListKeyPoliciesOut:
    """A key has one policy, ``default`` (syncsvc has no AWS RAM and so no ``AWS_RAM`` policy)."""
    given, markers = call.given, Markers(services.signer, "ListKeyPolicies")
    key_id = await _key_id(services, given.KeyId)
    await services.key_access.authorize(call.caller, "ListKeyPolicies", key_id)
    await services.kms.public.keys.key(key_id)
    after = markers.after(given.Marker)
    names = [name for name in ["default"] if after is None or name > after]
    entries, page = markers.page([(name, name) for name in names], given.Limit)
    return {"PolicyNames": entries, **page}


# --- aliases ----------------------------------------------------------------------------------------------------------


async def create_alias(services: Services, call: Call[CreateAliasIn]) -> Empty:
    await services.key_access.authorize(call.caller, "CreateAlias", call.given.TargetKeyId)
    await services.kms.public.lifecycle.create_alias(call.given.AliasName, call.given.TargetKeyId)
    return {}


async def update_alias(services: Services, call: Call[UpdateAliasIn]) -> Empty:
    """KMS checks UpdateAlias on the key the alias names now and on the new one."""
    given, lifecycle = call.given, services.kms.public.lifecycle
    target_id = await services.kms.public.keys.key_id_only(given.TargetKeyId, "TargetKeyId")
    current = await lifecycle.alias_key(given.AliasName)
    await services.key_access.authorize_each(call.caller, "UpdateAlias", [current.key_id, target_id])
    await lifecycle.update_alias(given.AliasName, target_id)
    return {}


async def delete_alias(services: Services, call: Call[DeleteAliasIn]) -> Empty:
    lifecycle = services.kms.public.lifecycle
    current = await lifecycle.alias_key(call.given.AliasName)
    await services.key_access.authorize(call.caller, "DeleteAlias", current.key_id)
    await lifecycle.delete_alias(call.given.AliasName)
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
