"""Settings: the one typed configuration object, loaded once from ``SYNCSVC_*`` variables (and CLI overrides).

No other module reads the environment. Secrets are ``SecretStr`` so they never appear in a repr or a log line.
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class DeveloperCredential(tuple[str, SecretStr]):
    """An ``(access_key_id, secret)`` pair accepted for developer (admin) SigV4 requests."""

    __slots__ = ()

    @property
    def access_key_id(self) -> str:
        return self[0]

    @property
    def secret(self) -> SecretStr:
        return self[1]


#: The algorithms a provider may list: asymmetric signatures only, so a public key can never serve as an HMAC secret.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)


class OidcProvider(BaseModel):
    """One OpenID Connect provider whose ID tokens are accepted as federated logins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The key in a Cognito ``Logins`` map, e.g. ``accounts.google.com`` or ``login.example.com``.
    name: str = Field(min_length=1, max_length=128)
    #: The exact ``iss`` the provider's tokens carry.
    issuer: str = Field(min_length=1)
    #: Client ids accepted as ``aud`` besides those the identity pool allows.
    audiences: tuple[str, ...] = ()
    #: Where the provider publishes its keys: exactly one of an http(s) URL or a local file.
    jwks_url: str | None = None
    jwks_file: str | None = None
    #: The signing algorithms accepted (asymmetric only).
    algorithms: tuple[str, ...] = ("RS256",)
    #: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
    leeway_seconds: int = Field(default=60, ge=0, le=3600)

    @field_validator("audiences")
    @classmethod
    def _nonempty_audiences(cls, audiences: tuple[str, ...]) -> tuple[str, ...]:
        if any(not audience for audience in audiences):
            raise ValueError("an audience (client id) cannot be empty")
        return audiences

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_algorithms(cls, algorithms: tuple[str, ...]) -> tuple[str, ...]:
        if not algorithms:
            raise ValueError("at least one signing algorithm is required")
        for algorithm in algorithms:
            if algorithm.lower() == "none":
                raise ValueError("algorithm 'none' is not allowed: ID tokens must be signed")
            if algorithm.upper().startswith("HS"):
                raise ValueError(f"algorithm '{algorithm}' is not allowed: only asymmetric algorithms can be used")
            if algorithm not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(
                    f"unknown algorithm '{algorithm}': use one of {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
                )
        return algorithms

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError("jwks_url must be an http(s) URL")
        return url

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of jwks_url and jwks_file")
        return self


class Settings(BaseSettings):
    """Everything the service can be told. Each field maps to ``SYNCSVC_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="SYNCSVC_", frozen=True, extra="ignore")

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis, the system of record: redis://host:port/db (one node), "
        "redis+cluster://host:port,host:port/ (a Redis Cluster) or redis+sentinel://host:port,…/service[/db].",
    )
    redis_replica_acks: int = Field(
        0,
        ge=0,
        le=16,
        description="At least this many replicas, and every replica online, must confirm a write (WAIT) before it is "
        "acknowledged; 0 = the primary's word.",
    )
    redis_replica_ack_timeout_ms: int = Field(
        1000, ge=10, le=60_000, description="How long a write waits for SYNCSVC_REDIS_REPLICA_ACKS confirmations."
    )
    redis_allow_eviction: bool = Field(
        False,
        description="Run on a Redis whose maxmemory-policy may evict keys (anything but noeviction): syncsvc "
        "refuses such a Redis at start-up and while serving, since a full Redis would then drop acknowledged data "
        "without a word. Only for a Redis whose memory never reaches maxmemory, or one whose data does not matter.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port the HTTP server listens on (0 = any free port).")
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$", description="AWS region this serves.")
    developer_credentials: Annotated[tuple[DeveloperCredential, ...], NoDecode] = Field(
        (),
        description="Comma-separated ACCESS_KEY_ID:SECRET pairs allowed to call developer (admin) operations.",
    )
    root_key_file: Path | None = Field(
        None,
        description="File holding the KMS root key (64 hex characters; `syncsvc keys root-key PATH` makes one, "
        "`make dev` keeps one in .data/root.key). It wraps every master key; without it nothing starts.",
    )
    previous_root_key_file: Path | None = Field(
        None,
        description="While the root key is rotated: the key it replaces. What is stored opens under either; "
        "`syncsvc keys rotate-root` moves everything to the new one, after which this is unset and the old key "
        "can be destroyed.",
    )
    root_key_pkcs11: SecretStr | None = Field(
        None,
        description="Instead of SYNCSVC_ROOT_KEY_FILE: the root key is an AES key inside a PKCS#11 token (an HSM) "
        "and never leaves it, named by an RFC 7512 URI: pkcs11:token=LABEL;object=KEY-LABEL?module-path=/path/to/"
        "module.so&pin-source=file:/path/to/pin (module-path defaults to SYNCSVC_PKCS11_MODULE; pin-value=PIN is "
        "accepted too). `syncsvc keys root-key 'pkcs11:...'` makes the key in the token.",
    )
    previous_root_key_pkcs11: SecretStr | None = Field(
        None,
        description="While the root key is rotated, when the key it replaces is in a PKCS#11 token: its URI (as "
        "SYNCSVC_ROOT_KEY_PKCS11). At most one of this and SYNCSVC_PREVIOUS_ROOT_KEY_FILE.",
    )
    data_key_cache_entries: int = Field(10_000, ge=1, description="Identities whose data key is kept unwrapped.")
    data_key_cache_seconds: float = Field(
        300.0, gt=0, description="How long an unwrapped data key stays cached before KMS unwraps it again."
    )
    data_key_cache_uses: int = Field(
        1_000_000, ge=1, description="Values a cached data key seals or opens before KMS unwraps it again."
    )
    data_key_cache_bytes: int = Field(
        1 << 30, ge=1, description="Bytes a cached data key seals or opens before KMS unwraps it again."
    )
    kms_key_quota: int = Field(1000, ge=1, description="Master keys the deployment may hold (KMS: 1,000 per region).")
    pkcs11_module: str | None = Field(
        None,
        description="Path of the PKCS#11 module (shared library) that KMS custom key stores open their tokens with, "
        "e.g. /usr/lib/softhsm/libsofthsm2.so. Unset: CreateCustomKeyStore and ConnectCustomKeyStore are refused.",
    )
    token_secret: SecretStr | None = Field(
        None,
        description="Key that signs SyncSessionTokens and pagination tokens. When unset, one is generated once and "
        "kept in Redis so that every instance shares it.",
    )
    sync_session_ttl_seconds: int = Field(
        1800, ge=60, le=86400, description="Lifetime of a SyncSessionToken issued by ListRecords."
    )
    shards: int = Field(
        64,
        ge=1,
        le=16384,
        description="Number of identity shards (Redis hash tags and outbox streams). Fixed for a deployment's life: "
        "the first start records it in Redis and later starts refuse a different value.",
    )
    max_datasets_per_identity: int = Field(20, ge=1, description="Cognito default: 20 datasets per identity.")
    max_records_per_dataset: int = Field(1024, ge=1, description="Cognito default: 1,024 live records per dataset.")
    max_dataset_bytes: int = Field(
        1024 * 1024, ge=1, description="Cognito default: 1 MB per dataset (UTF-8 bytes of keys + values)."
    )
    max_value_bytes: int = Field(1024 * 1024, ge=1, description="Largest record value, in UTF-8 bytes.")
    max_body_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="Largest request body; a bit above the dataset limit for JSON escapes.",
    )
    pool_cache_seconds: float = Field(
        2.0,
        ge=0,
        le=60,
        description="How long an instance trusts its cached copy of an identity pool. A pool deleted through "
        "another instance may still be served here for this long.",
    )
    clock_skew_seconds: int = Field(300, ge=1, description="Allowed SigV4 clock skew (AWS: 5 minutes).")
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+(/\S*)?$",  # no whitespace: "[^/]" alone would take a trailing newline
        description="The URL clients reach this service at: the `iss` of the tokens it issues and the base of "
        "/.well-known/*. Default: http://<host>:<port>.",
    )
    oidc_providers: tuple[OidcProvider, ...] = Field(
        (),
        description='OpenID Connect providers accepted for federated logins, as JSON: [{"name": '
        '"login.example.com", "issuer": "https://login.example.com", "jwks_url": "https://…/jwks.json", '
        '"audiences": ["client-id"], "algorithms": ["RS256"]}]. A pool allows a provider through its '
        "SupportedLoginProviders or OpenIdConnectProviderARNs.",
    )
    credentials_ttl_seconds: int = Field(
        3600, ge=60, le=43200, description="Lifetime of temporary credentials (GetCredentialsForIdentity)."
    )
    token_rotation_seconds: int = Field(
        86400, ge=60, description="How often the key that signs identity tokens changes (old keys stay published)."
    )
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers (host:port, comma-separated).")
    relay: bool = Field(
        True, description="Run the outbox relay inside `syncsvc serve` (it can also run alone: `syncsvc relay`)."
    )
    relay_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="`syncsvc relay` (which serves no API) serves GET /metrics on this port of SYNCSVC_HOST, under "
        "the SYNCSVC_METRICS rule; 0: not served. `syncsvc serve` serves /metrics on its own port.",
    )
    relay_batch: int = Field(500, ge=1, le=10000, description="Outbox entries per Kafka transaction, at most.")
    relay_linger_ms: int = Field(
        50,
        ge=0,
        le=10_000,
        description="Least time between two Kafka transactions of one relay lane: changes arriving sooner gather into "
        "the next one. A transaction costs several broker round trips, so under load this multiplies the changes per "
        "transaction; it adds at most this much to the stream latency, and nothing to a change to a quiet lane.",
    )
    relay_lanes: int = Field(
        4,
        ge=1,
        le=16384,
        description="Relay lanes: lane k publishes the shards s with s % relay_lanes == k, all of them in one Kafka "
        "transaction at a time, with one transactional producer. At most the shard count. Fixed for a deployment's "
        "life like the shard count (a shard must always belong to the same transactional.id for fencing to hold): "
        "the first start records it in Redis and later starts refuse a different value.",
    )
    relay_transactional_prefix: str = Field(
        "syncsvc-relay", pattern=r"^[a-zA-Z0-9._-]+$", description="Kafka transactional.id prefix (+ '-lane-<lane>')."
    )
    relay_checkpoint_topic: str = Field(
        "syncsvc-relay-checkpoints",
        pattern=r"^[a-zA-Z0-9._-]+$",
        description="Compacted topic holding each shard's published position, written in the same transaction.",
    )
    stream_partitions: int = Field(6, ge=1, le=10000, description="Partitions of a stream topic syncsvc creates.")
    stream_replication: int | None = Field(
        None,
        ge=1,
        le=7,
        description="Replication factor of the topics syncsvc creates (stream topics and the checkpoint topic), or "
        "`auto` (the default): 3 on a cluster of 3 or more brokers, else one per broker. Each such topic also gets "
        "min.insync.replicas = 2 from a factor of 3 on (1 below it), so a change the relay commits (acks=all) is on "
        "at least two brokers and one broker may be down without stopping the stream. `auto` counts the brokers "
        "the cluster reports when the topic is created; set the factor in production, so that a topic created "
        "while a broker is down waits for it instead of getting fewer replicas.",
    )
    bulk_publish_window_seconds: int = Field(
        86400,
        ge=0,
        description="How long after a successful BulkPublish of a pool another one is refused (Cognito: 24 h; "
        "0 = no limit).",
    )
    get_id_per_second: int = Field(25, ge=0, description="GetId calls per second per pool (0 = no limit).")
    token_calls_per_second: int = Field(
        200, ge=0, description="Credential and token calls per second per pool (0 = no limit)."
    )
    writes_per_identity_per_second: int = Field(
        0,
        ge=0,
        description="Writes (UpdateRecords with patches, DeleteDataset) per second per identity; past it "
        "TooManyRequestsException and Retry-After: 1 (0 = no limit). A device writes a few times a minute: a limit "
        "of 10-50 stops one misbehaving client from taking a worker, at one Redis round trip per write.",
    )
    writes_per_pool_per_second: int = Field(
        0,
        ge=0,
        description="Writes per second over all identities of a pool, the same way (0 = no limit): caps what one app "
        "can take of a deployment shared by several.",
    )
    triggers: str = Field(
        "",
        description="Sync triggers to register, besides the `syncsvc.triggers` entry points: comma-separated "
        "name=package.module:function (see syncsvc/triggers/spec.py). Checked at start-up.",
    )
    triggers_on_developer_writes: bool = Field(
        False,
        description="Also run a pool's sync trigger for writes made with developer credentials (Cognito runs it "
        "only for writes made with identity credentials).",
    )
    trace_triggers: bool = Field(
        False, description="Log every trigger call: its input, output, outcome and duration (values redacted)."
    )
    trace_trigger_values: bool = Field(
        False, description="With trace_triggers, log record values as they are instead of their length."
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="SMTP server that delivers user pools' codes and temporary passwords by e-mail: "
        "smtp://host:port (plain), smtp+starttls://host:port, smtps://host:port (TLS), with user:password@ to log "
        "in. Unset: codes are only logged as sent (see log_codes).",
    )
    smtp_from: str = Field(
        "no-reply@localhost", min_length=3, description="The From address of user pools' code e-mails."
    )
    log_codes: bool = Field(
        False,
        description="Log user pools' codes and temporary passwords in clear (development only: whoever reads the "
        "log can confirm or reset any account). Off: a log line says only that a code was sent, and where (masked).",
    )
    push_queue_size: int = Field(
        64,
        ge=1,
        le=100_000,
        description="Messages waiting to be sent on one device socket, at most; a socket that falls further behind "
        "is closed with 4008 (the device reconnects and resumes).",
    )
    push_send_buffer_bytes: int = Field(
        65536,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Bytes a device socket may hold unsent, in the process and in the kernel each; past that its "
        "queue fills (see push_queue_size). Bounds memory per socket.",
    )
    push_heartbeat_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How often a device socket is pinged; one that does not answer within half of it is closed.",
    )
    push_max_devices_per_identity: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Devices one identity may register (RegisterDevice past it: LimitExceededException); as each "
        "device holds at most one live socket, this also bounds an identity's push sockets.",
    )
    push_max_sockets: int | None = Field(
        None,
        ge=1,
        description="Push sockets one process holds at most (past it a socket is refused with "
        "TooManyRequestsException before the upgrade). Default: 90% of max_connections, so requests and health "
        "checks always have room.",
    )
    max_connections: int | None = Field(
        None,
        ge=1,
        description="Connections one process holds at most; at the cap a new one closes the longest idle one, or is "
        "refused when all are busy. Default: the open-files limit less reserved_descriptors.",
    )
    reserved_descriptors: int = Field(
        256,
        ge=0,
        description="Open files kept out of max_connections' default for Redis, Kafka, logs and workers.",
    )
    max_connections_per_address: int = Field(
        0,
        ge=0,
        description="Connections one client address may hold at once (0 = no such cap); past it a new connection of "
        "that address is reset. Off by default: behind a load balancer or a carrier NAT one address is many clients.",
    )
    idle_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A connection with no request for this long (its first one included) is closed.",
    )
    body_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A request body must arrive whole within this time, or the request is answered 408.",
    )
    max_requests_in_flight: int = Field(
        64,
        ge=0,
        description="Requests one process works on at once (0 = no bound); past it a request is answered at once with "
        "TooManyRequestsException and Retry-After: 1, which the AWS SDKs retry with backoff. Counted after "
        "authentication; health, discovery and push sockets are not counted. A process reaches its peak well below "
        "64 requests at once, and answers 64 within ~0.1 s at its peak, so admitted requests keep a bounded latency "
        "under any offered load (measured at three times the peak in `make bench`; README 'Past capacity').",
    )
    max_buffered_body_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Request body bytes one process holds at once, over every request in it; a request that would "
        "pass it is refused with TooManyRequestsException (retried by the SDKs). At least max_body_bytes.",
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: str = Field(
        "text",
        pattern=r"^(text|json)$",
        description="How `syncsvc serve` and `syncsvc relay` write their log lines: text, or json (one JSON object "
        "per line: time, process, level, logger, message, and a line's own fields).",
    )
    access_log: bool = Field(
        False,
        description="Log one line per request answered (logger syncsvc.access, level INFO): request id, service, "
        "operation, outcome, status and duration; never a credential or a record value.",
    )
    stall_log_ms: int = Field(
        0,
        ge=0,
        description="A diagnostic: log, with the stack that ran, every stall of the event loop longer than this "
        "(milliseconds; 0 = off). See syncsvc.background.StallWatch.",
    )
    tracing: str = Field(
        "off",
        pattern=r"^(off|otlp)$",
        description="OpenTelemetry tracing: off, or otlp (a span per request, Redis scripts and triggers as its "
        "children, the traceparent carried into the stream's Kafka headers; exported over OTLP/HTTP to the collector "
        "OpenTelemetry's own OTEL_EXPORTER_OTLP_ENDPOINT names, default http://localhost:4318).",
    )
    console: bool = Field(
        True,
        description="Serve the web console at /console (sign-in with a developer credential pair).",
    )
    console_session_seconds: int = Field(
        3600,
        ge=60,
        le=86400,
        description="A console session ends after this many seconds without a request (and after 12 hours in all).",
    )
    metrics: str = Field(
        "open",
        pattern=r"^(open|developer|off)$",
        description="GET /metrics (Prometheus' text format): open to anyone, as exporters usually are; developer: "
        "HTTP Basic authentication with a developer credential pair (access key id as the user, secret as the "
        "password: a Prometheus scrape config's basic_auth); off: not served.",
    )
    event_loop: str = Field(
        "asyncio",
        pattern=r"^(uvloop|asyncio)$",
        description="The event loop `syncsvc serve` and `syncsvc relay` run on: asyncio (the standard library's) or "
        "uvloop (libuv). asyncio by default: it takes as little CPU per request here, and a process past its "
        "capacity on uvloop accepts new connections a few at a time, so health checks and new clients wait "
        "seconds in the listen queue (README, Past capacity).",
    )

    @field_validator("developer_credentials", mode="before")
    @classmethod
    def _parse_credentials(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        pairs = []
        for item in filter(None, (part.strip() for part in raw.split(","))):
            key_id, sep, secret = item.partition(":")
            if not sep or not key_id or not secret:
                raise ValueError("each credential must look like ACCESS_KEY_ID:SECRET")
            pairs.append(DeveloperCredential((key_id, SecretStr(secret))))
        return tuple(pairs)

    @field_validator("stream_replication", mode="before")
    @classmethod
    def _auto_replication(cls, raw: Any) -> Any:
        """``auto`` is None: the relay chooses the factor from the cluster's size (see the field)."""
        return None if isinstance(raw, str) and raw.strip().lower() == "auto" else raw

    @field_validator("relay_lanes")
    @classmethod
    def _lanes_within_shards(cls, lanes: int, info: ValidationInfo) -> int:
        shards = info.data.get("shards")
        if shards is not None and lanes > shards:
            raise ValueError(f"must not exceed the shard count ({shards})")
        return lanes

    @model_validator(mode="after")
    def _one_root_key(self) -> Self:
        for file, token, name in (
            (self.root_key_file, self.root_key_pkcs11, "ROOT_KEY"),
            (self.previous_root_key_file, self.previous_root_key_pkcs11, "PREVIOUS_ROOT_KEY"),
        ):
            if file is not None and token is not None:
                raise ValueError(f"set SYNCSVC_{name}_FILE or SYNCSVC_{name}_PKCS11, not both")
        return self

    @property
    def root_key(self) -> str | None:
        """Where the root key is: a key file's path, or a PKCS#11 URI (``syncsvc.kms.root.open_root_key``)."""
        return _root_key_location(self.root_key_file, self.root_key_pkcs11)

    @property
    def previous_root_key(self) -> str | None:
        """Where the previous root key is while the root key is rotated (as :attr:`root_key`)."""
        return _root_key_location(self.previous_root_key_file, self.previous_root_key_pkcs11)

    @property
    def issuer_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def developer_secret(self, access_key_id: str) -> str | None:
        """The secret of a developer access key id, or None when the id is not a developer's."""
        for credential in self.developer_credentials:
            if credential.access_key_id == access_key_id:
                return credential.secret.get_secret_value()
        return None


def _root_key_location(file: Path | None, token: SecretStr | None) -> str | None:
    return token.get_secret_value() if token is not None else None if file is None else str(file)


class SettingsError(Exception):
    """A setting is invalid; ``str()`` is one line a person can act on."""


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once, apply CLI overrides (None values are ignored), and validate everything."""
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "settings"
        raise SettingsError(f"invalid setting SYNCSVC_{field.upper()}: {first['msg']}") from None


def connection_limit(settings: Settings) -> int:
    """The configured cap, or the open-files limit less the descriptors kept for everything else."""
    if settings.max_connections is not None:
        return settings.max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1, soft - settings.reserved_descriptors)
