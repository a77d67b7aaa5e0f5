"""The webhook endpoint: `POST /webhooks/voucherify`, with `/metrics`, `/healthz`, `/readyz`.

Each request is checked in this order, and each refusal has its own answer: content type
(415), size (413), signature (401, before anything in the body is believed). A signed body
is Voucherify's, so it is never refused after that: one the mapping cannot read (not JSON,
not a delivery, an unknown format, a value the contract cannot hold) is dead-lettered as
received and answered 202 (see dead_letters.py); a non-customer event is answered 2xx and
produced nowhere; a re-send is answered 2xx and produced once; and the record is answered
2xx only once the broker acknowledged it (503 and Retry-After otherwise: Voucherify sends it
again), dead letters included. No answer is a 500 or carries a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from consumer.config import GatewaySettings
from consumer.ingest.dead_letters import dead_letter, dedupe_key, readable_id
from consumer.ingest.metrics import GatewayMetrics
from consumer.ingest.publisher import Outcome, Publisher
from consumer.ingest.records import InputRecord, webhook_record
from consumer.ingest.signature import SIGNATURE_HEADER, Verifier, well_formed
from consumer.pipeline.codec import AvroCodec, EncodeError, RegistryUnavailable
from consumer.pipeline.codec.delivery_json import (
    NOT_ENCODABLE,
    Delivery,
    DeliveryError,
    bounded_type,
    loads,
    parse,
    project_of,
)
from consumer.telemetry.logs import get as get_logger

log = get_logger("gateway")

WEBHOOK_PATH: Final = "/webhooks/voucherify"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MapDelivery = Callable[[Any], Delivery]  # parsed JSON -> Delivery; raises DeliveryError


def _json_content(content_type: str) -> bool:
    main, _, sub = content_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        codec: AvroCodec,
        publisher: Publisher,
        metrics: GatewayMetrics,
        registry: CollectorRegistry,
        mapping: MapDelivery = parse,
    ) -> None:
        self.settings = settings
        self.mapping = mapping
        self.dlq_topic = settings.dead_letter_topic()
        self.codec = codec
        self.publisher = publisher
        self.metrics = metrics
        self.registry = registry
        self.verifier = Verifier(settings.secrets(), settings.project_secret_map())
        self.stopping = False
        self._in_flight = 0  # requests being handled (one event loop: a plain int)
        # Single-object framing needs nothing remote; Confluent framing needs the id once.
        self._framing_known = codec.confluent is None

    def app(self) -> web.Application:
        # One byte over the limit is enough to know: aiohttp stops reading there.
        app = web.Application(client_max_size=self.settings.max_body_bytes, middlewares=[self._guard])
        app.router.add_post(WEBHOOK_PATH, self.webhook)
        app.router.add_get("/metrics", self.scrape)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        return app

    # -- answers ---------------------------------------------------------------------------------
    def _answer(self, outcome: str, status: int, reason: str | None = None, **fields: Any) -> web.Response:
        self.metrics.requests.labels(outcome, str(status)).inc()
        headers = {"Retry-After": str(self.settings.retry_after_seconds)} if status == 503 else None
        body: dict[str, Any] = {"status": outcome}
        if reason:
            body["reason"] = reason
        if outcome != "accepted":
            level = log.warning if status >= 500 or outcome in ("unauthorized", "dead_lettered") else log.info
            level("webhook_refused" if status >= 400 else "webhook_answered", outcome=outcome, status=status, **fields)
        return web.json_response(body, status=status, headers=headers)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        probe = request.path in ("/metrics", "/healthz", "/readyz")
        if not probe:
            if self._in_flight >= self.settings.max_in_flight:
                # Overload: refuse before reading the body, so memory stays bounded; Voucherify retries.
                return self._answer("overloaded", 503, "too many requests in flight")
            self._in_flight += 1
            self.metrics.in_flight.inc()
        try:
            return await handler(request)
        except web.HTTPException as exc:  # the router's 404 / 405, aiohttp's 413
            if exc.status == 413:
                return self._answer("too_large", 413, f"the body is over {self.settings.max_body_bytes} bytes")
            if exc.status in (404, 405):
                why = "no such path" if exc.status == 404 else f"{request.method} is not allowed here"
                answer = self._answer("not_found", exc.status, why)
                if exc.status == 405:
                    answer.headers["Allow"] = exc.headers.get("Allow", "POST")
                return answer
            return self._answer("bad_request", 400, exc.reason)
        except Exception as exc:  # a bug: answer something Voucherify retries, never a traceback
            log.error("webhook_handler_failed", error_class=type(exc).__name__)
            return self._answer("unavailable", 503, "internal error")
        finally:
            if not probe:
                self._in_flight -= 1
                self.metrics.in_flight.dec()

    # -- the webhook -----------------------------------------------------------------------------
    async def webhook(self, request: web.Request) -> web.Response:
        if self.stopping:
            return self._answer("unavailable", 503, "shutting down")
        if not _json_content(request.content_type):
            return self._answer("unsupported_media_type", 415, "Content-Type must be application/json")
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            return self._answer("too_large", 413, f"the body is over {self.settings.max_body_bytes} bytes")
        body = await request.read()
        received_ms = int(time.time() * 1000)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not well_formed(signature):
            return self._unauthorized("missing" if signature is None else "malformed")
        try:
            doc = loads(body)
        except DeliveryError as exc:
            signed, signer = self.verifier.signer(body, signature)
            if not signed:
                return self._unauthorized("wrong")
            return await self._dead_letter(body, exc, received_ms, signer, None)
        project_id = project_of(doc)
        if project_id is None:
            signed, project_id = self.verifier.signer(body, signature)
        else:
            signed = self.verifier.verify(body, signature, project_id)
        if not signed:
            return self._unauthorized("wrong")
        try:
            delivery = self.mapping(doc)
        except DeliveryError as exc:
            return await self._dead_letter(body, exc, received_ms, project_id, readable_id(doc, "id"))
        fields = {"delivery_id": delivery.delivery_id, "project_id": delivery.project_id}
        if not delivery.is_customer_event:
            self.metrics.ignored.labels(delivery.family).inc()
            return self._answer("ignored", 200, None, event_family=delivery.family, **fields)
        encode = functools.partial(webhook_record, self.codec, delivery)
        try:
            if self._framing_known:
                record = encode()
            else:  # Confluent framing before the schema id is known: the registry call must not block the loop
                record = await asyncio.get_running_loop().run_in_executor(None, encode)
                self._framing_known = True
        except EncodeError as exc:  # the event's own fault: kept, like any unreadable delivery
            error = DeliveryError(f"the event cannot be written to the contract: {exc}", NOT_ENCODABLE)
            return await self._dead_letter(body, error, received_ms, delivery.project_id, delivery.delivery_id)
        except RegistryUnavailable as exc:  # Confluent framing: the registry did not answer; not the event's fault
            log.warning("registry_unavailable", error_class=type(exc).__name__)
            return self._answer("unavailable", 503, "schema registry unavailable")
        topic = self.settings.topic_for(delivery.project_id)
        started = time.monotonic()
        outcome = await self._publish(topic, record, (topic, delivery.event_id))
        fields["activity_type"] = bounded_type(delivery.event_type)
        if outcome is Outcome.ACKED:
            log.debug("webhook_accepted", ack_ms=round((time.monotonic() - started) * 1000, 1), **fields)
            return self._answer("accepted", 200)
        if outcome is Outcome.DUPLICATE:
            self.metrics.duplicates.inc()
            return self._answer("duplicate", 200, "already stored", **fields)
        return self._unstored(outcome, **fields)

    async def _dead_letter(
        self, body: bytes, error: DeliveryError, received_ms: int, project_id: str | None, delivery_id: str | None
    ) -> web.Response:
        """A signed body the mapping cannot read: stored as received, then answered 202."""
        record = dead_letter(body, error, received_at_ms=received_ms, project_id=project_id, delivery_id=delivery_id)
        outcome = await self._publish(self.dlq_topic, record, dedupe_key(body))
        fields = {"reason_code": error.code, "project_id": project_id, "delivery_id": delivery_id}
        if outcome is Outcome.ACKED:
            self.metrics.dead_letters.labels(error.code).inc()
            return self._answer("dead_lettered", 202, f"dead-lettered to {self.dlq_topic}: {error}", **fields)
        if outcome is Outcome.DUPLICATE:
            self.metrics.duplicates.inc()
            return self._answer("dead_lettered", 202, f"already dead-lettered to {self.dlq_topic}", **fields)
        return self._unstored(outcome, **fields)

    async def _publish(self, topic: str, record: InputRecord, key: Hashable) -> Outcome:
        return await self.publisher.publish(topic, record, key, self.settings.ack_timeout_seconds)

    def _unstored(self, outcome: Outcome, **fields: Any) -> web.Response:
        if outcome is Outcome.TIMEOUT:
            return self._answer("timeout", 503, "the broker did not acknowledge in time", **fields)
        return self._answer("unavailable", 503, "the broker is unavailable", **fields)

    def _unauthorized(self, how: str) -> web.Response:
        self.metrics.signature_failures.inc()
        return self._answer("unauthorized", 401, f"{how} {SIGNATURE_HEADER}", signature=how)

    # -- probes ----------------------------------------------------------------------------------
    async def scrape(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def ready(self) -> tuple[bool, str]:
        broker = self.publisher.broker
        if self.stopping:
            return False, "stopping"
        if broker.fatal:
            return False, "producer failed: restart needed"
        if not broker.up:
            return False, "broker unreachable"
        return True, "broker reachable"

    async def healthz(self, _request: web.Request) -> web.Response:
        fatal = self.publisher.broker.fatal
        return web.Response(status=503 if fatal else 200, text="producer failed\n" if fatal else "ok\n")

    async def readyz(self, _request: web.Request) -> web.Response:
        ok, why = self.ready()
        return web.Response(status=200 if ok else 503, text=why + "\n")
