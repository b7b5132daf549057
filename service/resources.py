"""The long-lived objects a gateway or worker process shares, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import httpx
from redis.asyncio import Redis

from service import container
from service.access.quotas import Quotas
from service.access.registry import AppRegistry
from service.access.tokens import TokenVerifier
from service.accounts.crypto import KeyBox
from service.accounts.directory import AccountDirectory, Upstream
from service.accounts.registry import AccountRegistry
from service.auth import parse_secret_keys
from service.autopipeline import AutoPipeline
from service.batches.intake import BatchIntake
from service.batches.store import BatchStore
from service.budget import UpstreamBudget
from service.byte_budget import ByteBudget
from service.genlook.client import GenlookClient
from service.keys import Keys
from service.metrics import MetricsWriter
from service.namespacing import DEFAULT_ACCOUNT, upstream_account
from service.photos import PhotoStore
from service.products import Catalog, ProductCache
from service.redis_client import connect_redis
from service.results.links import ResultLinks
from service.results.objects import ResultObjects
from service.results.retention import retention_seconds
from service.results.reuse import ResultReuse
from service.settings import Settings
from service.tryons.accept import TryOnIntake
from service.tryons.lookups import LookupCache
from service.tryons.store import TryOnStore
from service.upstream import BudgetHooks, CreditsReader, budget_shape, make_client
from service.usage.alerts import BudgetAlerts
from service.usage.counting import UsageCounter
from service.usage.report import UsageReader
from service.webhooks.callback_secrets import CallbackSecrets
from service.webhooks.deliveries import DeliveryStore
from service.webhooks.registry import EndpointRegistry
from service.webhooks.ssrf import UrlPolicy


def decode_budget(settings: Settings) -> ByteBudget:
    gw = settings.gateway
    capacity = gw.decode_memory_bytes or container.decode_budget()
    return ByteBudget(capacity, wait=gw.decode_wait_seconds)


def image_threads(settings: Settings) -> int:
    # One CPU is left to the event loop.
    return settings.gateway.image_threads or max(1, container.cpu_count() - 1)


def url_policy(settings: Settings) -> UrlPolicy:
    hosts = (h.strip() for h in settings.webhooks.allow_http_hosts.split(","))
    return UrlPolicy(allow_http_hosts=frozenset(h for h in hosts if h))


@dataclass
class Resources:
    settings: Settings
    redis: Redis
    # The request path's small commands; it connects on first use, so a worker that never
    # calls it holds no extra connection.
    pipeline: AutoPipeline
    lookups: LookupCache
    keys: Keys
    store: TryOnStore
    photos: PhotoStore
    catalog: Catalog
    products: ProductCache
    # The default account's (GENLOOK_API_KEY): the one every app uses without a pool.
    budget: UpstreamBudget
    hooks: BudgetHooks
    genlook: GenlookClient
    # Every upstream account: its client and budget, pools, failover (service/accounts/).
    accounts: AccountDirectory
    endpoints: EndpointRegistry
    deliveries: DeliveryStore
    callback_secrets: CallbackSecrets
    url_policy: UrlPolicy
    metrics: MetricsWriter
    apps: AppRegistry
    quotas: Quotas
    tokens: TokenVerifier
    intake: TryOnIntake
    batches: BatchIntake
    # Stored results: the objects, their links, and the client that copies them from Genlook.
    results: ResultObjects
    links: ResultLinks
    result_http: httpx.AsyncClient
    # The exact result cache and its single flight (service/results/reuse.py).
    reuse: ResultReuse
    # Usage figures (counted by the store's scripts) and the budget alerts.
    usage: UsageReader
    alerts: BudgetAlerts

    @classmethod
    def build(
        cls, settings: Settings, redis: Redis | None = None, *, autopipeline: bool = False
    ) -> Resources:
        """`autopipeline`: the try-on store's request-path commands (accept, get) use the
        auto-pipeline; the gateway wants this, workers keep redis-py for everything."""
        redis = redis or connect_redis(settings)
        pipeline = AutoPipeline(
            settings.redis.url,
            connect_timeout=settings.redis.connect_timeout,
            command_timeout=settings.redis.socket_timeout,
        )
        keys = Keys(settings.redis.prefix)
        g = settings.genlook
        budget = UpstreamBudget(redis, keys, budget_shape(g))
        metrics = MetricsWriter(redis, keys)
        hooks = BudgetHooks(budget, g.rate_window, metrics)
        genlook = make_client(g, hooks)
        accounts = AccountDirectory(
            AccountRegistry(redis, keys, g, KeyBox(settings.gateway.master_key)),
            redis=redis,
            keys=keys,
            genlook=g,
            metrics=metrics,
            default=Upstream(
                id=DEFAULT_ACCOUNT,
                digest=upstream_account(g),
                client=genlook,
                budget=budget,
                hooks=hooks,
            ),
            default_credits=CreditsReader(genlook),
        )
        apps = AppRegistry(redis, keys)
        quotas = Quotas(redis, keys)
        lookups = LookupCache()
        links = ResultLinks(redis, keys, settings)
        store = TryOnStore(
            redis,
            keys,
            settings.redis.queue_name,
            pipeline if autopipeline else None,
            quotas=quotas,
            view=links.view,
            usage=UsageCounter(keys, retention_days=settings.usage.retention_days),
        )
        photos = PhotoStore(
            redis,
            keys,
            g.lifetime,
            bytes_ttl=settings.gateway.photo_bytes_ttl,
            # An upload's worst case: every attempt times out, with backoff between.
            lock_ttl=3 * (g.connect_timeout + g.read_timeout) + 10,
            lock_wait=min(5.0, settings.worker.job_timeout / 4),
            metrics=metrics,
            max_image_pixels=settings.gateway.max_image_pixels,
            decode_budget=decode_budget(settings),
            cleaning_threads=image_threads(settings),
        )
        policy = url_policy(settings)
        reuse = ResultReuse(
            redis,
            keys,
            ttl=settings.results.reuse_ttl,
            lead_ttl=settings.worker.tryon_deadline + 60,
            retention=partial(retention_seconds, settings),
        )
        intake = TryOnIntake(
            store=store,
            photos=photos,
            quotas=quotas,
            pipeline=pipeline,
            keys=keys,
            lookups=lookups,
            url_policy=policy,
            idempotency_ttl=settings.gateway.idempotency_ttl,
            retention=settings.gateway.tryon_retention,
            deadline=settings.worker.tryon_deadline,
            reuse=reuse,
        )
        return cls(
            settings=settings,
            redis=redis,
            pipeline=pipeline,
            lookups=lookups,
            keys=keys,
            store=store,
            photos=photos,
            catalog=Catalog(redis, keys),
            products=ProductCache(
                redis,
                keys,
                inline_ttl=g.lifetime(g.inline_product_days),
                oneshot_ttl=g.lifetime(g.oneshot_product_days),
            ),
            budget=budget,
            hooks=hooks,
            genlook=genlook,
            accounts=accounts,
            endpoints=EndpointRegistry(redis, keys),
            deliveries=DeliveryStore(redis, keys),
            callback_secrets=CallbackSecrets(redis, keys),
            url_policy=policy,
            metrics=metrics,
            apps=apps,
            quotas=quotas,
            tokens=TokenVerifier(redis, keys, apps),
            intake=intake,
            batches=BatchIntake(
                batches=BatchStore(redis, keys, store, settings.gateway.tryon_retention),
                tryons=intake,
                quotas=quotas,
                idempotency_ttl=settings.gateway.idempotency_ttl,
                spacing=budget.shape.interval_ms / 1000 if settings.worker.lanes else 0.0,
            ),
            results=ResultObjects(redis, keys, settings.results),
            links=links,
            # Genlook's result URLs point at its storage, not its API: a plain client, bounded.
            result_http=httpx.AsyncClient(
                timeout=httpx.Timeout(settings.results.fetch_timeout, connect=5.0)
            ),
            reuse=reuse,
            usage=UsageReader(redis, keys, retention_days=settings.usage.retention_days),
            alerts=BudgetAlerts(
                redis,
                keys,
                apps=apps,
                quotas=quotas,
                settings=settings.alerts,
                static_apps=frozenset(parse_secret_keys(settings.gateway.secret_keys).values()),
            ),
        )

    async def aclose(self) -> None:
        await self.genlook.aclose()
        await self.accounts.aclose()
        await self.result_http.aclose()
        await self.pipeline.aclose()
        await self.redis.aclose()
