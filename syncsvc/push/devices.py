"""The push sync use-cases: RegisterDevice, SubscribeToDataset, UnsubscribeFromDataset, and opening a device socket.

Rules, as in Cognito: only identity credentials may call these (a developer is refused), each identity only on
itself (``syncsvc.access.DataAccess``), and only in a pool whose push sync is configured (``PushSync`` set with
SetIdentityPoolConfiguration; otherwise InvalidConfigurationException). A DeviceId is derived from the identity and
the device's token, so registering the same device again answers the same DeviceId.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from syncsvc.access import DataAccess
from syncsvc.clock import Clock
from syncsvc.errors import (
    InvalidConfigurationError,
    InvalidParameterError,
    LimitExceededError,
    NotAuthorizedError,
    ResourceNotFoundError,
)
from syncsvc.identity.pools import PoolDirectory
from syncsvc.model import Caller, check_dataset_name
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.push import RedisPushStore

#: Cognito's platforms, and WEBSOCKET: a device that holds a socket to syncsvc (every platform may, see the README).
PLATFORMS: Final = ("APNS", "APNS_SANDBOX", "GCM", "ADM", "WEBSOCKET")
_DEVICE_IDS = uuid.UUID("5b0f1a8e-6d0c-4e55-9a51-0c2f8e3b7d11")  # the uuid5 namespace of DeviceIds
_MAX_TOKEN = 4096
_MAX_DEVICE_ID = 256


@dataclass(frozen=True, slots=True)
class PushLimits:
    """What one identity may hold: registered devices (so push sockets: one live socket per device), and dataset
    subscriptions per device (the identity's dataset limit: a device cannot follow more datasets than there can be)."""

    devices: int = 100
    subscriptions: int = 20


class PushService:
    def __init__(
        self,
        access: DataAccess,
        pools: PoolDirectory,
        store: RedisPushStore,
        limits: PushLimits = PushLimits(),
        *,
        clock: Clock,
    ) -> None:
        self._access = access
        self._pools = pools
        self._store = store
        self._limits = limits
        self._clock = clock

    async def register_device(
        self, caller: Caller, pool_id: str, identity_id: str, *, platform: str, token: str
    ) -> str:
        """RegisterDevice: the device's DeviceId (the same for the same identity and token)."""
        if platform not in PLATFORMS:
            raise InvalidParameterError(f"Platform must be one of {', '.join(PLATFORMS)}, not '{platform[:32]}'")
        if not 1 <= len(token) <= _MAX_TOKEN:
            raise InvalidParameterError(f"Token must be 1 to {_MAX_TOKEN} characters, not {len(token)}")
        keyspace = await self._device_owner(caller, pool_id, identity_id, "RegisterDevice")
        device_id = str(uuid.uuid5(_DEVICE_IDS, f"{pool_id}/{identity_id}/{token}"))
        if not await self._store.register_device(
            keyspace, device_id, platform, token, self._clock.now_ms(), limit=self._limits.devices
        ):
            raise LimitExceededError(
                f"Identity {identity_id} already has {self._limits.devices} registered devices, the most it may have"
            )
        return device_id

    async def subscribe(
        self, caller: Caller, pool_id: str, identity_id: str, dataset: str, device_id: str, *, on: bool
    ) -> None:
        """SubscribeToDataset (``on``) or UnsubscribeFromDataset: the device must be registered to the identity."""
        check_dataset_name(dataset)
        operation = "SubscribeToDataset" if on else "UnsubscribeFromDataset"
        keyspace = await self._device_owner(caller, pool_id, identity_id, operation)
        done = await self._store.subscribe(
            keyspace, _checked_device_id(device_id), dataset, on=on, limit=self._limits.subscriptions
        )
        if done == 0:
            raise _unknown_device(device_id, identity_id)
        if done < 0:
            raise LimitExceededError(
                f"Device {device_id[:64]} already follows {self._limits.subscriptions} datasets, the most it may"
            )

    async def open_socket(self, caller: Caller, pool_id: str, identity_id: str, device_id: str) -> IdentityKeyspace:
        """Checks that ``caller`` may hold the push socket of ``device_id``; returns the identity's keys."""
        keyspace = await self._device_owner(caller, pool_id, identity_id, "the push socket")
        if not await self._store.device_exists(keyspace, _checked_device_id(device_id)):
            raise _unknown_device(device_id, identity_id)
        return keyspace

    async def catch_up(self, keyspace: IdentityKeyspace, device_id: str) -> dict[str, int]:
        """Dataset → current sync count, for every dataset the device subscribed to."""
        return await self._store.catch_up(keyspace, device_id)

    async def _device_owner(self, caller: Caller, pool_id: str, identity_id: str, operation: str) -> IdentityKeyspace:
        if caller.is_developer:
            raise NotAuthorizedError(f"{operation} needs the identity's own credentials, not developer credentials")
        keyspace = await self._access.authorize(caller, pool_id, identity_id)
        if not (await self._pools.configuration(pool_id)).push_enabled:
            raise InvalidConfigurationError(
                f"Push sync is not configured for identity pool {pool_id}: set PushSync with "
                "SetIdentityPoolConfiguration"
            )
        return keyspace


def _checked_device_id(device_id: str) -> str:
    if not 1 <= len(device_id) <= _MAX_DEVICE_ID:
        raise InvalidParameterError(f"DeviceId must be 1 to {_MAX_DEVICE_ID} characters")
    return device_id


def _unknown_device(device_id: str, identity_id: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"Device {device_id[:64]} is not registered to identity {identity_id}")
