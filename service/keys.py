"""Every Redis key the project writes, in one place (as arq keeps its own in arq/constants.py).

Keys hang off one configurable prefix so several deployments can share a Redis instance;
the arq queue name comes from settings too. Nothing else in the code spells a key.

Parts are joined with `:`; a join stays unambiguous because no part but the last may contain
one (service/namespacing.py): app ids are checked at creation and pass through `part` (which
encodes an id stored before that check), and keys for cached upstream references name the
upstream account they are true of.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.namespacing import DEFAULT_ACCOUNT, part


def batch_event_topic(batch_id: str) -> str:
    """What `EventHub.watch` is given to follow a batch (try-on ids never start `batch:`)."""
    return f"batch:{batch_id}"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "tryon:"

    # --- try-ons ---------------------------------------------------------------------------
    def tryon(self, tryon_id: str) -> str:
        """Hash: `rev`, `status`, `doc` (the record as msgspec JSON)."""
        return f"{self.prefix}t:{tryon_id}"

    def tryon_events(self, tryon_id: str) -> str:
        """Pub/sub channel: one message per state change of a try-on."""
        return f"{self.prefix}ev:{tryon_id}"

    def idempotency(self, app: str, key: str) -> str:
        """String: `<tryon id> <request fingerprint>`, for an Idempotency-Key (a browser's is
        first scoped to its user by `namespacing.end_user_idempotency_key`)."""
        return f"{self.prefix}idem:{part(app)}:{key}"

    @property
    def active_tryons(self) -> str:
        """Sorted set: non-terminal try-on ids scored by their deadline (the sweeper's list)."""
        return f"{self.prefix}active"

    # --- batches (service/batches/) ---------------------------------------------------------
    def batch(self, batch_id: str) -> str:
        """Hash: `doc` (the batch as JSON), `total`, `accepted`, `finished`, `n:<status>` per
        terminal status, `status`, `head` (the batch.completed event's data, unclosed),
        `callback`, `completed_at`."""
        return f"{self.prefix}batch:{batch_id}"

    def batch_items(self, batch_id: str) -> str:
        """List: the batch's try-on ids, in the order of its items."""
        return f"{self.prefix}batch:{batch_id}:items"

    def batch_finished(self, batch_id: str) -> str:
        """Set: the batch's try-ons counted as finished (each once, even if retried)."""
        return f"{self.prefix}batch:{batch_id}:finished"

    def batch_idempotency(self, app: str, key: str) -> str:
        """String: `<batch id> <request fingerprint>` for a batch's Idempotency-Key."""
        return f"{self.prefix}batch-idem:{app}:{key}"

    def batch_events(self, batch_id: str) -> str:
        """Pub/sub channel of a batch's progress: under the try-on channels' pattern, so the
        gateway's one subscription (service/events.py) carries it too."""
        return self.tryon_events(batch_event_topic(batch_id))

    def customer_tryons(self, app: str, external_user_id: str) -> str:
        """Set: try-on ids of one end user, for GDPR erase."""
        return f"{self.prefix}cust:{part(app)}:{external_user_id}:t"

    # --- photos ----------------------------------------------------------------------------
    def image(self, image_id: str) -> str:
        """Hash: a gateway image (owner, content hash, crop, retention, upstream image id)."""
        return f"{self.prefix}img:{image_id}"

    def image_bytes(self, digest: str) -> str:
        """String: photo bytes kept until the upstream upload succeeds."""
        return f"{self.prefix}imgdata:{digest}"

    def upstream_photo(self, account: str, dedupe_key: str) -> str:
        """String: the Genlook imageId, in one upstream account, for one (app, bytes, crop,
        user, retention) combination."""
        return f"{self.prefix}photo:{account}:{dedupe_key}"

    def upstream_photo_lock(self, account: str, dedupe_key: str) -> str:
        """String lock: one upload in flight per account and dedupe key, across the fleet."""
        return f"{self.prefix}photo-lock:{account}:{dedupe_key}"

    def customer_images(self, app: str, external_user_id: str) -> str:
        """Set: gateway image ids of one end user, for GDPR erase."""
        return f"{self.prefix}cust:{part(app)}:{external_user_id}:i"

    # --- stored results (service/results/) ------------------------------------------------
    @property
    def results_expiry(self) -> str:
        """Sorted set: object keys of stored results by end of retention (the sweeper's list)."""
        return f"{self.prefix}results:expiry"

    @property
    def results_sizes(self) -> str:
        """Hash: object key -> its size in bytes."""
        return f"{self.prefix}results:sizes"

    @property
    def results_bytes(self) -> str:
        """Counter: bytes of every indexed result (the stored-bytes gauge)."""
        return f"{self.prefix}results:bytes"

    @property
    def results_signing_key(self) -> str:
        """String: the fleet's link-signing key when RESULTS_SIGNING_KEYS sets none."""
        return f"{self.prefix}results:signing-key"

    # --- the exact result cache (service/results/reuse.py) --------------------------------
    def reuse_entry(self, reuse_key: str) -> str:
        """Hash: `from` (the try-on that made the result), `object` (its store key), `doc`
        (its StoredResult): a completed result identical try-ons complete from."""
        return f"{self.prefix}reuse:{reuse_key}"

    def reuse_lead(self, reuse_key: str) -> str:
        """String: the try-on generating the result for this key now (single flight)."""
        return f"{self.prefix}reuse-lead:{reuse_key}"

    def reuse_waiters(self, reuse_key: str) -> str:
        """Set: try-ons waiting for the leader's result instead of generating their own."""
        return f"{self.prefix}reuse-wait:{reuse_key}"

    # --- products --------------------------------------------------------------------------
    def catalog(self, app: str) -> str:
        """Hash: externalId -> product definition (msgspec JSON) of one app's catalog."""
        return f"{self.prefix}catalog:{app}"

    def catalog_order(self, app: str) -> str:
        """Sorted set: externalIds by creation time, for stable cursor pagination."""
        return f"{self.prefix}catalog-order:{app}"

    def product_cache(self, account: str, upstream_id: str) -> str:
        """String: fingerprint of the definition known to exist in that upstream account under
        that id (the id names the app: service/namespacing.py)."""
        return f"{self.prefix}pcache:{account}:{upstream_id}"

    def oneshot_cache(self, account: str, app: str, fingerprint: str) -> str:
        """String: the `_anon_` id Genlook gave one app's one-shot product with this definition
        in that upstream account."""
        return f"{self.prefix}pcache-anon:{account}:{part(app)}:{fingerprint}"

    # --- Genlook's API at /tryon/v1 (service/genlook_compat/) --------------------------------
    def compat_products(self, app: str) -> str:
        """Hash: externalId -> what Genlook's product shape has beyond the catalog's definition
        (origin, validForDays, lastUsedAt, image roles...), msgspec JSON."""
        return f"{self.prefix}compat-products:{part(app)}"

    def compat_oneshot(self, app: str, anon_id: str) -> str:
        """String: a one-shot product's definition under the `_anon_` id the gateway gave it
        (expires with the product)."""
        return f"{self.prefix}compat-oneshot:{part(app)}:{anon_id}"

    # --- metrics ---------------------------------------------------------------------------
    @property
    def metrics(self) -> str:
        """Hash: every fleet-wide counter and histogram series (see service/metrics.py)."""
        return f"{self.prefix}metrics"

    @property
    def credits_balance(self) -> str:
        """String: the last credit balance read from Genlook (a gauge for /metrics)."""
        return f"{self.prefix}credits-balance"

    @property
    def webhook_endpoints_disabled(self) -> str:
        """Set: ids of disabled webhook endpoints (a gauge for /metrics)."""
        return f"{self.prefix}whe-disabled"

    # --- usage (service/usage/) -------------------------------------------------------------
    def usage_totals(self, day: str) -> str:
        """Hash, expiring after USAGE_RETENTION_DAYS: `<account>:<app>:<figure>` -> count, for
        one UTC day (`YYYY-MM-DD`)."""
        return f"{self.prefix}usage:{day}"

    def usage_users(self, app: str, day: str) -> str:
        """Hash, expiring with the day's totals: `<figure>:<externalUserId>` -> count, of one
        app on one day (an erase deletes the user's fields)."""
        return f"{self.prefix}usage:{day}:u:{part(app)}"

    def usage_products(self, app: str, day: str) -> str:
        """Hash, expiring with the day's totals: `<figure>:<product externalId>` -> count."""
        return f"{self.prefix}usage:{day}:p:{part(app)}"

    @property
    def alerts(self) -> str:
        """Hash: alert id (`<kind>:<subject>:<level>`) -> when it fired; a field is removed when
        the condition clears (a top-up, a new day), which re-arms the alert."""
        return f"{self.prefix}alerts"

    # --- upstream budget (one per upstream account) ------------------------------------------
    @property
    def budget(self) -> str:
        """String: GCRA theoretical arrival time (ms) of the default account's upstream budget."""
        return f"{self.prefix}budget:tat"

    @property
    def budget_pause(self) -> str:
        """String with a TTL: set while upstream told us to back off (429 Retry-After)."""
        return f"{self.prefix}budget:pause"

    # The default account keeps the names it had before accounts existed (upgrade in place).
    def account_budget(self, account: str) -> str:
        """String: the GCRA arrival time of one upstream account's budget."""
        return self._per_account(self.budget, account)

    def account_budget_pause(self, account: str) -> str:
        """String with a TTL: set while that account's upstream told us to back off (429)."""
        return self._per_account(self.budget_pause, account)

    # --- upstream accounts (service/accounts/) ---------------------------------------------
    @property
    def accounts(self) -> str:
        """Hash: account id -> AccountConfig (msgspec JSON; the key as Fernet ciphertext)."""
        return f"{self.prefix}accounts"

    @property
    def account_status(self) -> str:
        """Hash: account id -> AccountStatus (disabled, out of the pool and why, balance)."""
        return f"{self.prefix}account-status"

    @property
    def account_pools(self) -> str:
        """Hash: app id -> its ordered pool of account ids (JSON list); absent: the default."""
        return f"{self.prefix}account-pools"

    def account_backlog(self, account: str) -> str:
        """Sorted set: try-ons being sent through the account (uploading, waiting for a budget
        cell, creating), scored by when an attempt took them up: how far behind it is."""
        return f"{self.prefix}account-backlog:{account}"

    def app_accounts(self, app: str) -> str:
        """Set: accounts an app's photos or try-ons were sent to (a GDPR erase reaches each)."""
        return f"{self.prefix}app-accounts:{part(app)}"

    def balance_refresh_lock(self, account: str) -> str:
        """String with a TTL: one process of the fleet reads this account's balance."""
        return self._per_account(f"{self.credits_balance}:lock", account)

    # Lanes (service/lanes.py) share out one account's budget: their waiters are per account.
    def budget_waiters(self, lane: str, account: str = DEFAULT_ACCOUNT) -> str:
        """Sorted set: starts waiting for a cell of the account's budget in `lane`, scored by
        fair-queuing tag."""
        return self._per_account(f"{self.prefix}budget:waiters:{lane}", account)

    def budget_waiters_due(self, account: str = DEFAULT_ACCOUNT) -> str:
        """Sorted set: each lane waiter -> the time (ms) by which it asks again (else it left)."""
        return self._per_account(f"{self.prefix}budget:waiters-due", account)

    def budget_fair_tags(self, account: str = DEFAULT_ACCOUNT) -> str:
        """Hash: each lane's virtual clock and each app's last fair-queuing tag in it."""
        return self._per_account(f"{self.prefix}budget:fair-tags", account)

    @staticmethod
    def _per_account(name: str, account: str) -> str:
        # The default account keeps the names it had before accounts existed.
        return name if account == DEFAULT_ACCOUNT else f"{name}:{account}"

    @property
    def durations(self) -> str:
        """List: recent upstream generation durations (ms), newest first, for adaptive polls."""
        return f"{self.prefix}durations"

    # --- webhooks --------------------------------------------------------------------------
    def webhook_endpoint(self, endpoint_id: str) -> str:
        """String: one registered webhook endpoint (msgspec JSON, secrets included)."""
        return f"{self.prefix}whe:{endpoint_id}"

    def webhook_endpoints(self, app: str) -> str:
        """Sorted set: one app's endpoint ids, all scored 0. Ids begin with their creation
        time, so Redis' lexical order is creation order and a page can start after any
        cursor with ZRANGE BYLEX, even one whose endpoint was deleted meanwhile."""
        return f"{self.prefix}whe-app:{app}"

    # --- webhook deliveries ----------------------------------------------------------------
    @property
    def outbox(self) -> str:
        """Stream: one entry per try-on event that has somewhere to go, written atomically with
        the state change that caused it."""
        return f"{self.prefix}outbox"

    def delivery(self, delivery_id: str) -> str:
        """String: a delivery (event x target) as JSON."""
        return f"{self.prefix}dlv:{delivery_id}"

    def delivery_attempts(self, delivery_id: str) -> str:
        """List: the delivery's attempts, oldest first, as JSON."""
        return f"{self.prefix}dlv-att:{delivery_id}"

    def delivery_order(self, target: str, tryon_id: str) -> str:
        """List: deliveries of one try-on to one target, in event order (the head goes first)."""
        return f"{self.prefix}dlv-order:{target}:{tryon_id}"

    def delivery_slots(self, target: str) -> str:
        """Sorted set: deliveries in flight to one target, scored by lease expiry."""
        return f"{self.prefix}dlv-slots:{target}"

    def deliveries_by_target(self, target: str) -> str:
        """Sorted set: delivery ids of one target by creation time."""
        return f"{self.prefix}dlv-by-target:{target}"

    def deliveries_by_tryon(self, tryon_id: str) -> str:
        """Sorted set: delivery ids of one try-on by creation time."""
        return f"{self.prefix}dlv-by-tryon:{tryon_id}"

    @property
    def deliveries_due(self) -> str:
        """Sorted set: pending deliveries by next attempt time (the sweeper's list)."""
        return f"{self.prefix}dlv-due"

    def target_failing_since(self, target: str) -> str:
        """String: when the target's current run of failures began."""
        return f"{self.prefix}dlv-failing:{target}"

    def callback_secrets(self, app: str) -> str:
        """String: the app's secrets (JSON) for per-request callback URLs."""
        return f"{self.prefix}cb-secrets:{app}"

    # --- ops (service/ops/) ---------------------------------------------------------------
    def ops_pause(self, what: str) -> str:
        """String (JSON: who, when, why; a TTL when the pause was given one): `intake` or
        `processing` is paused while it exists."""
        return f"{self.prefix}ops:pause:{what}"

    def ops_worker(self, worker_id: str) -> str:
        """String (JSON) with a TTL of a few beats: one live worker's heartbeat."""
        return f"{self.prefix}ops:worker:{worker_id}"

    @property
    def ops_workers(self) -> str:
        """Sorted set: worker ids by last beat, so live workers are listed without SCAN."""
        return f"{self.prefix}ops:workers"

    @property
    def ops_failed_tryons(self) -> str:
        """Sorted set, capped: failed try-on ids by failure time, for the ops API."""
        return f"{self.prefix}ops:failed"

    @property
    def ops_failed_deliveries(self) -> str:
        """Sorted set, capped: delivery ids that ended failed, by failure time."""
        return f"{self.prefix}ops:dlv-failed"

    @property
    def ops_history(self) -> str:
        """Stream, trimmed to the last hour: compact samples of counters and queue gauges for
        the ops dashboard's charts (service/ops/history.py)."""
        return f"{self.prefix}ops:history"

    # --- apps, keys, end-user tokens, quotas -------------------------------------------------
    @property
    def apps(self) -> str:
        """Hash: app id -> App (msgspec JSON)."""
        return f"{self.prefix}apps"

    @property
    def deleted_apps(self) -> str:
        """Hash: app id -> when it was deleted. A deleted app's id is never given again."""
        return f"{self.prefix}apps-deleted"

    def app_key(self, digest: str) -> str:
        """String: KeyInfo of the key whose SHA-256 digest this is (the key is never stored)."""
        return f"{self.prefix}appkey:{digest}"

    def app_keys(self, app: str) -> str:
        """Hash: key id -> digest, the keys of one app (for listing, rotation, revocation)."""
        return f"{self.prefix}appkeys:{app}"

    def signing_keys(self, app: str) -> str:
        """Hash: kid -> SigningKey, the public keys verifying an app's offline tokens."""
        return f"{self.prefix}signkeys:{app}"

    def session_token(self, digest: str) -> str:
        """String, expiring with the token: the grant of a token minted by POST /v1/sessions."""
        return f"{self.prefix}session:{digest}"

    def customer_sessions(self, app: str, external_user_id: str) -> str:
        """Set: digests of one end user's session tokens (expiring with the last), so an erase
        revokes them."""
        return f"{self.prefix}cust:{part(app)}:{external_user_id}:s"

    def token_uses(self, token_id: str) -> str:
        """Counter: try-ons reserved on one end-user token (expires after the token)."""
        return f"{self.prefix}q:tok:{token_id}"

    def daily_tryons(self, app: str, day: str) -> str:
        """Counter: try-ons reserved by one app on one UTC day, against its daily credit cap."""
        return f"{self.prefix}q:day:{app}:{day}"

    def anonymous_daily(self, app: str, ip: str, day: str) -> str:
        """Counter: anonymous try-ons from one client IP on one UTC day."""
        return f"{self.prefix}q:anon:{app}:{ip}:{day}"

    def rate_window(self, scope: str, who: str, window: int) -> str:
        """Counter for one fixed one-minute window of a browser rate limit (`who` is a digest
        of the user or IP: the name holds no one's id)."""
        return f"{self.prefix}q:rate:{scope}:{who}:{window}"

    def quota_released(self, tryon_id: str) -> str:
        """Marker: this try-on's reservation was given back (a release happens once)."""
        return f"{self.prefix}q:rel:{tryon_id}"

    def demo_publishable_key(self, app: str) -> str:
        """String: the publishable key `/demo` hands out for `app`, in clear (publishable keys
        are public by design) so every gateway serves the same one (service/demo.py)."""
        return f"{self.prefix}demo:pk:{app}"
