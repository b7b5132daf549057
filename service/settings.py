"""Typed settings, one struct per concern, read from the environment.

Every field has a production-sane default; the environment variable that sets it is the
struct's prefix plus the field name in upper case (e.g. `GENLOOK_API_KEY`, `REDIS_URL`).
Values arrive as strings and are converted by msgspec, so a typo in a number fails at start-up
with the variable's name instead of deep inside a request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal, TypeVar

import msgspec
from emulator.demo_key import DEMO_API_KEY

from service.accounts.crypto import parse_master_keys
from service.admin_tokens import parse_admin_tokens
from service.redis_conn import parse_sentinel_url

EMULATOR_BASE_URL = "http://127.0.0.1:8081/tryon/v1"
GENLOOK_BASE_URL = "https://api.genlook.app/tryon/v1"
# The emulator's own default key (`tryon-gateway emulator` prints it): used when no real key is
# set, so an emulator started without `--api-key` accepts the gateway.
EMULATOR_DEMO_KEY = DEMO_API_KEY

DAY = 86_400.0
# Genlook's own limit on an uploaded photo: a larger one would be refused there, and the JS
# client and the multipart try-on route assume it.
MAX_PHOTO_BYTES = 10 * 1024 * 1024


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str = "redis://127.0.0.1:6379/0"
    # arq keeps a few global key names (arq:in-progress:*); isolate deployments by database
    # index or by Redis instance, and use the prefix to keep our own keys apart.
    prefix: str = "tryon:"
    queue_name: str = "tryon:queue"
    connect_timeout: float = 5.0
    socket_timeout: float = 10.0

    def __post_init__(self) -> None:
        parse_sentinel_url(self.url)  # a malformed Sentinel URL fails at start-up, named


class GenlookSettings(msgspec.Struct, frozen=True, kw_only=True):
    api_key: str = ""
    base_url: str = ""
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    # The sync endpoint holds up to 90 s upstream; the read timeout must outlast it.
    sync_timeout: float = 100.0
    max_connections: int = 100
    rate_limit: int = 100
    rate_window: float = 60.0
    # Share of the account limit the fleet may use; the rest absorbs clock skew and
    # calls made outside this gateway. 0.97 keeps throughput >= 95% of the limit.
    rate_margin: float = 0.97
    # How fast upstream time runs compared to ours: the emulator's --speed. Lifetimes
    # (product TTLs, retention) are divided by it so caches expire with the emulator's clock.
    clock_speed: float = 1.0
    wait_strategy: Literal["sync", "poll"] = "sync"
    # Lifetimes that Genlook documents, used as cache TTLs minus a safety margin.
    inline_product_days: float = 15.0
    oneshot_product_days: float = 7.0
    lifetime_safety: float = 0.9

    @property
    def uses_emulator(self) -> bool:
        return not self.api_key or self.resolved_base_url != GENLOOK_BASE_URL

    @property
    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return GENLOOK_BASE_URL if self.api_key else EMULATOR_BASE_URL

    @property
    def resolved_api_key(self) -> str:
        return self.api_key or EMULATOR_DEMO_KEY

    def lifetime(self, days: float) -> float:
        """A Genlook lifetime in our seconds, shortened by the safety margin."""
        return days * DAY * self.lifetime_safety / self.clock_speed


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    # `sk_...=app_id` pairs, comma separated: server keys of apps that need no stored policy
    # (no browser access, no caps). Apps made with `tryon-gateway keys` live in Redis instead.
    secret_keys: str = ""
    # How long a gateway remembers a resolved key and its app's policy: a revoked key or a
    # changed policy takes effect within this many seconds.
    key_cache_seconds: float = 5.0
    # Load balancers in front of the gateway whose X-Forwarded-For entries are trusted when
    # rate limiting browsers per IP (0: the socket peer is the client).
    trusted_proxies: int = 0
    # The app whose storefront `/demo` shows (set by `tryon-gateway dev`; empty: no demo).
    demo_app: str = ""
    # The largest photo file accepted (POST /v1/images, a multipart try-on's photo): 413
    # PAYLOAD_TOO_LARGE beyond. At most MAX_PHOTO_BYTES (Genlook's limit); lower it to shed
    # large uploads sooner.
    max_upload_bytes: int = MAX_PHOTO_BYTES
    # Width x height a photo's header may declare; larger ones are refused before decoding
    # (a 40 MP photo decodes to ~160 MB of pixels).
    max_image_pixels: int = 40_000_000
    # Bytes that photo decoding may hold at once across concurrent cleanings in one process
    # (service/byte_budget.py). 0: the container's memory limit (cgroup memory.max) less
    # 160 MiB, or half the machine's memory without one (service/container.py).
    decode_memory_bytes: int = 0
    # How long a photo waits for that budget before a 503 IMAGE_PROCESSING_BUSY.
    decode_wait_seconds: float = 10.0
    # Threads that decode photos. 0: the container's CPUs (cgroup cpu.max, affinity) minus
    # one for the event loop, at least 1.
    image_threads: int = 0
    # One JSON line per request (request id, trace, route, status, duration).
    access_log: bool = True
    # How long photo bytes stay in Redis to re-upload a photo Genlook lost (memory vs recovery).
    photo_bytes_ttl: float = DAY
    idempotency_ttl: float = DAY
    max_wait_seconds: float = 60.0
    tryon_retention: float = 7 * DAY
    # The serving process's first garbage-collector threshold (CPython's is 700), and its
    # start-up heap frozen out of collections; 0 keeps CPython's defaults (service/gc_tuning.py).
    gc_threshold: int = 10_000
    # Fernet keys, comma separated, that encrypt stored upstream accounts' Genlook keys: the
    # first encrypts, every one decrypts (rotation: docs/accounts.md). Empty: only the default
    # account (GENLOOK_API_KEY) exists; creating another is refused.
    master_key: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.max_upload_bytes <= MAX_PHOTO_BYTES:
            raise ValueError(
                f"invalid GATEWAY_MAX_UPLOAD_BYTES: 1 to {MAX_PHOTO_BYTES} (Genlook's limit)"
            )
        parse_master_keys(self.master_key)  # a malformed key fails at start-up, named


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    max_jobs: int = 200
    poll_delay: float = 0.1
    # arq's in-progress lease: a job whose worker died is picked up again after this + 10 s.
    job_timeout: float = 180.0
    health_check_interval: float = 5.0
    # Gives in-flight sync calls time to finish on SIGTERM (match terminationGracePeriodSeconds).
    job_completion_wait: int = 25
    # A try-on not terminal after this is failed by the deadline logic (never stuck forever).
    tryon_deadline: float = 900.0
    sweep_interval: float = 30.0
    # Priority lanes (docs/lanes.md): interactive creates before batch ones, apps sharing
    # each lane by weight. False: first come, first served (the bench's baseline).
    lanes: bool = True
    # Batch try-ons one worker holds at a time; the rest of its `max_jobs` stay free for
    # interactive ones. None: half of `max_jobs`.
    batch_slots: int | None = None

    @property
    def batch_jobs(self) -> int:
        return self.batch_slots if self.batch_slots is not None else max(1, self.max_jobs // 2)


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True):
    attempt_timeout: float = 15.0
    # Only this much of a receiver's answer is read (kept as an excerpt for the attempt log).
    max_response_bytes: int = 4096
    # Divides the retry schedule and the disable-after period: tests and benches run days in
    # seconds. 1.0 in production.
    time_scale: float = 1.0
    # An endpoint failing without a single success for this long is disabled and reported.
    disable_after_days: float = 5.0
    # Deliveries in flight per endpoint: one slow receiver never holds every worker.
    endpoint_concurrency: int = 10
    # Hosts that may be called over http:// and on internal addresses (dev and tests only),
    # comma separated, e.g. "127.0.0.1,localhost".
    allow_http_hosts: str = ""
    rotation_overlap: float = 86_400.0


class ResultSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Results copied from Genlook into the gateway's own object store (service/results/)."""

    # Where result images live: a directory (`file:///var/lib/tryon/results`, or a plain path,
    # relative to the working directory) or a bucket (`s3://bucket/prefix`, `gs://...`,
    # `az://...`), whose credentials and endpoint obstore reads from the standard variables
    # (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, AWS_REGION, AWS_ALLOW_HTTP, GOOGLE_*, AZURE_*).
    store_url: str = "data/results"
    # HMAC keys signing result links, comma separated: the first signs, every one verifies
    # (rotation: put the new key first, drop the old one once links signed with it may have
    # expired). Empty: one random key kept in Redis, shared by the fleet.
    signing_keys: str = ""
    # The gateway's address as clients reach it, for absolute result links (webhooks carry
    # them). Empty: http://GATEWAY_HOST:GATEWAY_PORT.
    base_url: str = ""
    # A CDN or bucket website serving the store's objects itself: links become
    # `<public_base_url>/<object key>` (unguessable keys, no signature; the store's access
    # rules apply). Empty: links go through GET /v1/results/{id}.
    public_base_url: str = ""
    # How long a stored result is kept: at least this, the try-on's `output.keepForDays`, and
    # the webhook retry window (WEBHOOK_TIME_SCALE applies), whichever is longest.
    retention_days: float = 7.0
    # A link's lifetime in seconds; 0: until the result's retention ends.
    link_ttl: float = 0.0
    # Tries at copying a result (fetch from Genlook, write to the store) before the try-on
    # fails with RESULT_NOT_STORED (an operator's retry resumes the copy, with no credit).
    copy_attempts: int = 8
    # Largest result image copied; a larger one counts as a failed copy.
    max_bytes: int = 25 * 1024 * 1024
    # Bound on one fetch of the image from Genlook, and on one object-store call.
    fetch_timeout: float = 30.0
    store_timeout: float = 30.0
    # Seconds a completed result stays reusable by identical try-ons (same app, end user,
    # product definition, photo and output options: service/results/reuse.py); 0 turns the
    # exact result cache off for the whole deployment.
    reuse_ttl: float = 86_400.0

    def __post_init__(self) -> None:
        if self.reuse_ttl < 0:
            raise ValueError("invalid RESULTS_REUSE_TTL: 0 (off) or more seconds")
        if self.copy_attempts < 1:
            raise ValueError("invalid RESULTS_COPY_ATTEMPTS: at least 1")
        if self.retention_days <= 0 or self.link_ttl < 0:
            raise ValueError("invalid RESULTS_RETENTION_DAYS / RESULTS_LINK_TTL")


class OpsSettings(msgspec.Struct, frozen=True, kw_only=True):
    # Bearer tokens of the ops API (`/ops/api`), comma separated, each optionally `token=name`
    # (the name is recorded as who paused what). Kept as SHA-256 digests like app keys. An app
    # key can never be one: tokens starting `sk_`/`pk_` are refused at start-up. Empty: the ops
    # API refuses every call.
    admin_tokens: str = ""
    # Retry-After of a 503 INTAKE_PAUSED when the pause has no end time.
    intake_retry_after: int = 30

    def __post_init__(self) -> None:
        parse_admin_tokens(self.admin_tokens)  # a bad token fails at start-up, named


class UsageSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Usage figures per account, app, end user, product and UTC day (service/usage/)."""

    # How long a day's figures are kept, and the longest span a report may ask for.
    retention_days: int = 90

    def __post_init__(self) -> None:
        if not 1 <= self.retention_days <= 3660:
            raise ValueError("invalid USAGE_RETENTION_DAYS: 1 to 3660")


def _numbers(text: str, name: str) -> tuple[int, ...]:
    """Whole numbers, comma separated, highest first."""
    try:
        return tuple(sorted({int(v) for v in text.split(",") if v.strip()}, reverse=True))
    except ValueError:
        raise ValueError(f"invalid {name}: comma-separated whole numbers") from None


class AlertSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Budget alerts (service/usage/alerts.py): webhook events to the apps' endpoints and to
    an ops endpoint, each once per crossing."""

    # Credit balances (comma separated) at or under which `account.balance_low` is sent; a
    # balance back above one (a top-up) re-arms it. Empty: no balance alerts.
    # The highest default stays under the emulator's starting 1,000 credits (a dev stack starts
    # quiet) and matches the GenlookCreditsLow Prometheus rule.
    balance_thresholds: str = "500,100,0"
    # Shares (percent, comma separated) of an app's daily cap at which `app.daily_cap_near` is
    # sent, once per UTC day. Empty: no cap alerts.
    daily_cap_percents: str = "80,100"
    # Where the same events also go, signed with `ops_secret` like any webhook (a `whsec_...`
    # secret); the SSRF guard applies as to any endpoint. Empty: apps' endpoints only.
    ops_url: str = ""
    ops_secret: str = ""

    @property
    def balances(self) -> tuple[int, ...]:
        """The thresholds, highest first."""
        return _numbers(self.balance_thresholds, "ALERTS_BALANCE_THRESHOLDS")

    @property
    def cap_percents(self) -> tuple[int, ...]:
        return _numbers(self.daily_cap_percents, "ALERTS_DAILY_CAP_PERCENTS")

    def __post_init__(self) -> None:
        self.balances  # noqa: B018 (a malformed list fails at start-up, named)
        if any(p <= 0 for p in self.cap_percents):
            raise ValueError("invalid ALERTS_DAILY_CAP_PERCENTS: percentages above 0")
        if self.ops_url and not self.ops_secret:
            # The secret's format is checked where it signs (service/usage/alerts.py), when
            # the process builds its resources at start-up.
            raise ValueError("ALERTS_OPS_URL needs ALERTS_OPS_SECRET (a whsec_... secret)")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    genlook: GenlookSettings = msgspec.field(default_factory=GenlookSettings)
    gateway: GatewaySettings = msgspec.field(default_factory=GatewaySettings)
    worker: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    ops: OpsSettings = msgspec.field(default_factory=OpsSettings)
    results: ResultSettings = msgspec.field(default_factory=ResultSettings)
    usage: UsageSettings = msgspec.field(default_factory=UsageSettings)
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            redis=_load(RedisSettings, "REDIS_", env),
            genlook=_load(GenlookSettings, "GENLOOK_", env),
            gateway=_load(GatewaySettings, "GATEWAY_", env),
            worker=_load(WorkerSettings, "WORKER_", env),
            webhooks=_load(WebhookSettings, "WEBHOOK_", env),
            ops=_load(OpsSettings, "OPS_", env),
            results=_load(ResultSettings, "RESULTS_", env),
            usage=_load(UsageSettings, "USAGE_", env),
            alerts=_load(AlertSettings, "ALERTS_", env),
        )


S = TypeVar("S", bound=msgspec.Struct)


def _load(cls: type[S], prefix: str, env: Mapping[str, str]) -> S:
    values = {
        name: env[prefix + name.upper()]
        for name in cls.__struct_fields__
        if prefix + name.upper() in env
    }
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid {prefix}* setting: {exc}") from exc
