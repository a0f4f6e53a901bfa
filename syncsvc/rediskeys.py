"""Every Redis key name the service uses, in one place.

All keys of one identity carry the hash tag of the identity's *shard*: ``{s<n>}`` where ``n`` is a stable hash of
the identity id modulo ``Settings.shards``. So every script that touches one identity stays in one Redis Cluster
slot, and (from the streams issue on) the shard's outbox stream lives in that same slot, so a write and its outbox
entry commit in one script. The shard count is fixed for a deployment's life (recorded under ``META``).

Dataset-scoped keys put the dataset name *last* after a fixed kind word, so no two datasets' keys can collide even
though names may contain ``:``.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

PREFIX = "syncsvc"

#: Hash of deployment-wide facts (the shard count, the relay lane count) checked at start-up.
META = f"{PREFIX}:meta"
#: The shared secret that signs sync session and pagination tokens, when not configured.
TOKEN_SECRET = f"{PREFIX}:secret:tokens"
#: Sorted set (all scores 0, ordered by member) of every identity pool id.
POOLS = f"{PREFIX}:pools"


def shard_of(identity_id: str, shards: int) -> int:
    """The identity's shard: stable across processes and versions (CRC-32, not Python's salted ``hash``). It depends
    on the identity id alone, so a request that names only the identity (GetCredentialsForIdentity) finds it."""
    return zlib.crc32(identity_id.encode()) % shards


def pool(identity_pool_id: str) -> str:
    """Hash: the identity pool's description."""
    return f"{PREFIX}:pool:{{{identity_pool_id}}}"


def shard_tag(shard: int) -> str:
    return f"{PREFIX}:{{s{shard}}}"


def pool_members(identity_pool_id: str, shard: int) -> str:
    """Sorted set (scores 0), per shard: the pool's identities in this shard, in id order (registered ones, and any
    identity a developer stored data for). Kept in the shard's slot so scripts add to it atomically; pool-wide
    questions (ListIdentities, usage, purge, bulk publish) walk every shard."""
    return f"{shard_tag(shard)}:members:{identity_pool_id}"


def outbox(shard: int) -> str:
    """Stream, per shard: committed changes waiting for the relay (fields: see update_records.lua). The entry id is
    the change id; the relay trims what it has published."""
    return f"{shard_tag(shard)}:outbox"


def relay_lane_lease(lane: int) -> str:
    """String with a time to live: the id of the relay that publishes this relay lane (a fixed group of shards) now."""
    return f"{PREFIX}:relay:lane:{lane}:lease"


def relay_position(shard: int) -> str:
    """String: the last outbox entry id the relay published (informational: Kafka's checkpoint topic is the truth)."""
    return f"{shard_tag(shard)}:relay:position"


def bulk_publish(identity_pool_id: str) -> str:
    """Hash, in the pool's slot: the pool's last bulk publish: ``status`` (IN_PROGRESS | FAILED | SUCCEEDED; no hash
    = NOT_STARTED), ``started`` / ``completed`` (epoch ms), ``failure`` (message), progress ``total`` / ``done``
    (datasets), ``waiting`` ("1" while it waits for the relay) and the resume cursor ``after`` (the last identity
    whose datasets are all in the outbox)."""
    return f"{PREFIX}:bulkpublish:{{{identity_pool_id}}}"


def bulk_publish_lease(identity_pool_id: str) -> str:
    """String with a time to live, in the pool's slot: the id of the worker that runs the pool's bulk publish now."""
    return f"{PREFIX}:bulkpublish:{{{identity_pool_id}}}:lease"


def profile(identity_id: str, shards: int) -> str:
    """Hash: a registered identity: ``pool``, ``created``, ``modified`` (epoch ms), ``logins`` (JSON list of
    [provider, subject]) and ``gen`` (raised to revoke every credential issued before)."""
    return _profile_in(shard_of(identity_id, shards), identity_id)


def _profile_in(shard: int, identity_id: str) -> str:
    return f"{shard_tag(shard)}:profile:{identity_id}"


def merged(identity_id: str, shards: int) -> str:
    """Hash, next to the profile it replaced: an identity merged into another (a guest who signed in with another
    identity's login, or MergeDeveloperIdentities' source): ``into`` (the identity now answered for it), ``pool``
    and ``purged`` ("1" once its data is gone). Expires after ``identity.broker.MERGED_MARKER_SECONDS``."""
    return f"{shard_tag(shard_of(identity_id, shards))}:merged:{identity_id}"


def login(identity_pool_id: str, provider: str, subject: str) -> str:
    """String: the identity a login (provider + subject) of a pool belongs to. The hash tag is a digest, so every
    login lands in its own slot whatever characters the subject holds."""
    digest = hashlib.sha256(f"{identity_pool_id}\0{provider}\0{subject}".encode()).hexdigest()[:32]
    return f"{PREFIX}:login:{{{digest}}}"


def rate(scope: str, operation: str, second: int) -> str:
    """Counter: calls of a rate-limited operation within one wall-clock second for a scope (a pool id or an identity
    id; ``syncsvc.store.rates``). Expires two seconds later."""
    return f"{PREFIX}:rate:{{{scope}}}:{operation}:{second}"


def pool_sessions(identity_pool_id: str, shard: int) -> str:
    """Counter, per shard: sync sessions (SyncSessionTokens issued) for the pool's identities in this shard."""
    return f"{shard_tag(shard)}:sessions:{identity_pool_id}"


@dataclass(frozen=True, slots=True)
class IdentityKeyspace:
    """The keys of one identity's data; build once per request with :meth:`of`."""

    identity_pool_id: str
    identity_id: str
    shard: int
    base: str

    @classmethod
    def of(cls, identity_pool_id: str, identity_id: str, shards: int) -> IdentityKeyspace:
        shard = shard_of(identity_id, shards)
        return cls(identity_pool_id, identity_id, shard, f"{shard_tag(shard)}:{identity_pool_id}/{identity_id}")

    @property
    def pool_members(self) -> str:
        return pool_members(self.identity_pool_id, self.shard)

    @property
    def profile(self) -> str:
        """The identity's profile hash (:func:`profile`): in the same slot as its data."""
        return _profile_in(self.shard, self.identity_id)

    @property
    def pool_sessions(self) -> str:
        return pool_sessions(self.identity_pool_id, self.shard)

    @property
    def datasets(self) -> str:
        """Sorted set (scores 0): names of the identity's live datasets, in name order."""
        return f"{self.base}:datasets"

    @property
    def every_dataset(self) -> str:
        """Set: every dataset name the identity ever created, live or deleted, so its data can be purged."""
        return f"{self.base}:everyds"

    @property
    def usage(self) -> str:
        """Hash: ``storage`` (bytes of live records) and ``modified`` (epoch ms) across the identity's datasets."""
        return f"{self.base}:usage"

    def dataset(self, name: str) -> str:
        """Hash: the dataset's metadata (sync count, dates, sizes, version vector, deletion marker)."""
        return f"{self.base}:ds:{name}"

    def records(self, name: str) -> str:
        """Hash: record key -> the stored record (JSON), tombstones included."""
        return f"{self.base}:rec:{name}"

    def changes(self, name: str) -> str:
        """Sorted set (scores 0): ``<sync count, 20 digits><record key>`` per record, so a lexicographic range is
        "every record changed after sync count N" in (sync count, key) order, with a stable cursor for pagination."""
        return f"{self.base}:log:{name}"

    def writers(self, name: str) -> str:
        """Hash: writer (device) id -> its last committed write (fingerprint, dot, result), for idempotent retries."""
        return f"{self.base}:dots:{name}"

    @property
    def devices(self) -> str:
        """Hash: DeviceId -> the registered device (JSON: platform, token, created), RegisterDevice."""
        return f"{self.base}:devices"

    def subscriptions(self, device_id: str) -> str:
        """Set: the dataset names device ``device_id`` subscribed to (SubscribeToDataset), for catch-up."""
        return f"{self.base}:subs:{device_id}"

    def subscribers(self, name: str) -> str:
        """Set: the DeviceIds subscribed to dataset ``name``; the write scripts notify them."""
        return f"{self.base}:subscribers:{name}"

    @property
    def data_keys(self) -> str:
        """Hash: ``v<n>`` -> the identity's data key version n, wrapped by its pool's master key, and ``current``.
        Deleting it makes every value sealed for the identity unreadable (see ``syncsvc.kms.envelope``)."""
        return f"{self.base}:dk"

    @property
    def push_channel(self) -> str:
        """The sharded Pub/Sub channel (SPUBLISH, in the identity's slot) the write scripts announce each change on;
        every instance holding a device socket of the identity listens to it (see ``syncsvc.push.hub``)."""
        return f"{self.base}:push"

    def write_keys(self, name: str) -> list[str]:
        """KEYS[1..10] of the dataset write scripts (update_records.lua, delete_dataset.lua), in their order."""
        return [
            self.dataset(name),
            self.records(name),
            self.changes(name),
            self.writers(name),
            self.datasets,
            self.usage,
            self.every_dataset,
            self.pool_members,
            outbox(self.shard),
            self.subscribers(name),
        ]

    def all_keys(self, dataset_names: list[str], device_ids: list[str]) -> list[str]:
        """Every key of the identity, given every dataset name it ever had and its devices (for purging it)."""
        per_dataset = [
            key
            for name in dataset_names
            for key in (
                self.dataset(name),
                self.records(name),
                self.changes(name),
                self.writers(name),
                self.subscribers(name),
            )
        ]
        per_device = [self.subscriptions(device_id) for device_id in device_ids]
        identity = [self.datasets, self.every_dataset, self.usage, self.devices, self.data_keys]
        return [*identity, *per_dataset, *per_device]


#: Hash: kid -> one token-signing key of the service (JSON: kid, alg, key_id, public_pem, created; the private key is
#: a KMS key's, never here), shared by every instance so they all sign with the same key and verify each other's
#: tokens (see ``syncsvc.store.keyring``).
SIGNING_KEYS = f"{PREFIX}:oidc:keys"


# --- KMS (deployment-wide) -------------------------------------------------------------------------------------------
# Every KMS key shares the hash tag ``{kms}``: creating a key checks the quota against the index, deleting one drops
# its aliases, each in one script, so the key hashes, the index and the aliases live in one Redis Cluster slot. Keys
# are few (the quota) and the envelope caches what it unwraps, so that slot carries little load.

#: Sorted set (scores 0): every master key id, for ListKeys and the key quota.
KMS_KEYS = f"{PREFIX}:{{kms}}:keys"
#: Hash: alias name (``alias/…``) -> key id.
KMS_ALIASES = f"{PREFIX}:{{kms}}:aliases"


def kms_key(key_id: str) -> str:
    """Hash: ``meta`` (the key's metadata, JSON) and ``v<n>`` (backing key version n, wrapped by the root key)."""
    return f"{PREFIX}:{{kms}}:key:{key_id}"


#: The KMS keys' names before they shared a hash tag (releases that ran on one Redis only), moved at start-up.
LEGACY_KMS_KEYS = f"{PREFIX}:kms:keys"
LEGACY_KMS_ALIASES = f"{PREFIX}:kms:aliases"


def legacy_kms_key(key_id: str) -> str:
    return f"{PREFIX}:kms:key:{key_id}"
