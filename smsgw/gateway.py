"""The HTTP gateway (CONTRACT §5): carriers' webhooks in, replies out, nothing lost.

    POST /carriers/{name}/mo    an MO in the carrier's format -> 200 with replies (sync mode) or
                                202 (async mode), only once the MO and its reply are committed
    POST /carriers/{name}/dlr   a delivery report for one of our MTs
    GET  on both                for carriers that call with GET (Kannel's get-url, dlr-url); 405
                                for the others
    GET  /healthz               200 when messages can be taken: store writable, workers alive
    GET  /metrics               Prometheus text
    /api/v1/...                 the agency's sending API (CONTRACT §8): api.py, added by `add_api`

A request is checked in this order: unknown carrier 404, method 405, body over 64 KiB 413,
signature 401, content type 415, body 400; each refusal is `{"error": "<reason>"}`, or the
carrier's own form of it (`CarrierAdapter.render_error`: Kannel, for one, must get a 200 with a
text for the phone). Nothing a client sends gives a 5xx; 503 means the gateway cannot take
messages now (shutting down, store failing), again in the carrier's form
(`render_unavailable`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .answers import RateLimitedAnswer
from .carrier import CarrierAdapter, load_adapter
from .config import Config
from .dossier_results import run_dossier_results
from .errors import BadRequest, PayloadTooLarge, RequestError, Unavailable, UnknownCarrier
from .ids import new_id
from .handover import take_left_over
from .intake import Intake
from .listener import parse_refusal
from .logs import get_logger, mask_text
from .metrics import Metrics
from .outbox import Outbox
from .protection import Protection
from .replies import reply
from .store import MessageStore, StoredMO, open_messages
from .wire import CarrierRequest, CarrierResponse

MAX_BODY = 64 * 1024
RETRY_AFTER = "5"     # seconds, on every 503 (shutting down, store unavailable)
PROBE_TIMEOUT = 2.0   # seconds for /healthz's write to the message store

log = get_logger(component="gateway")


class Gate:
    """Open while the gateway takes messages; closed when shutdown starts."""

    def __init__(self) -> None:
        self.open = True


CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
ADAPTERS = web.AppKey("adapters", dict[str, CarrierAdapter])
GATE = web.AppKey("gate", Gate)
STORE = web.AppKey("store", MessageStore)
SESSION = web.AppKey("session", aiohttp.ClientSession)
OUTBOX = web.AppKey("outbox", Outbox)
INTAKE = web.AppKey("intake", Intake)
# MT sends under way at once. A send's slot is held until its MT is recorded sent: on SQLite that
# commit is in this process; on PostgreSQL it is a WAL flush in another process, so more slots
# keep the carriers busy meanwhile (bench/webhook.py --mode async: 753-1,257 MT/s with 32 slots,
# 1,755-2,183 with 256, SQLite 1,803-2,053 with 32, interleaved). aiohttp's connector still opens
# at most 100 connections; the carriers' `tps` paces them either way.
MT_CONCURRENCY = 32
MT_CONCURRENCY_SHARED = 256


def create_app(config: Config, *, db_path: str, service_factory: Callable[[], Any] | None = None,
               adapters: dict[str, CarrierAdapter] | None = None, mt_concurrency: int | None = None,
               batch_delay: float = 0.0, resume_pending: bool = True, prune_daily: bool = False,
               first_prune_within: float | None = None, clock: Callable[[], float] = time.time,
               outbox_tick: float = 60.0, faq: Any = None, faq_refresh: float | None = None) -> web.Application:
    """The gateway app. The store, the HTTP client session and the MT workers live in `cleanup_ctx`.

    `service_factory()` returns the object answering messages (`await handle(text, sender)` ->
    `service.Outcome`); by default a `service.Service` over the records in `db_path`. `adapters`
    replaces the adapters built from the configuration (tests use `adapters.mock`). `prune_daily`
    runs the retention's daily prune (retention.py) beside the gateway: worker 0 only. `clock` is
    the outbox's time (held MTs, quiet hours) and `outbox_tick` its longest sleep (outbox.py):
    tests move the one and shorten the other. `faq` (a faq.Faq)
    answers the questions (BH HOI) it matches with confidence; without it the stored FAQ does, read
    again every `faq_refresh` seconds (faq_store.keep_faq_fresh; default a minute). `mt_concurrency`: MT sends under
    way at once; by default `MT_CONCURRENCY`, or `MT_CONCURRENCY_SHARED` on a shared store.
    """
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_observe])
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[GATE] = Gate()
    app[ADAPTERS] = dict(adapters) if adapters is not None else {
        name: load_adapter(carrier, shortcode=config.shortcode) for name, carrier in config.carriers.items()
    }

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            service = await _open_service(config, db_path, service_factory, stack, session, faq)
            store = await open_messages(db_path, batch_delay=batch_delay,
                                        on_batch=app[METRICS].commit_batch.observe,
                                        on_commit=app[METRICS].commit_seconds.observe)
            stack.push_async_callback(store.close)
            sends = mt_concurrency or (MT_CONCURRENCY_SHARED if getattr(store, "shared", False) else MT_CONCURRENCY)
            outbox = Outbox(store, app[ADAPTERS], session, app[METRICS], concurrency=sends, clock=clock,
                            tick=outbox_tick)
            await outbox.start(resume=resume_pending)
            stack.push_async_callback(outbox.stop)
            if resume_pending:   # the gateway that resumes the outbox sends the dossier results too
                stop = asyncio.Event()
                task = asyncio.create_task(run_dossier_results(db_path, config, store, outbox, clock=clock, stop=stop),
                                           name="smsgw-dossier-results")
                stack.push_async_callback(_finish, task, stop)
            if resume_pending and not store.shared:   # SQLite's delivering gateway: MTs other processes left
                left_over = asyncio.create_task(take_left_over(store, outbox), name="smsgw-left-over")
                stack.push_async_callback(_cancelled, left_over)
            conversations = getattr(service, "conversations", None)
            if faq is None and conversations is not None:   # the stored FAQ: staff labels come in as they are made
                from .faq_store import REFRESH_SECONDS, keep_faq_fresh   # scikit-learn: only where a service runs

                stop_faq = asyncio.Event()
                faq_task = asyncio.create_task(keep_faq_fresh(
                    db_path, lambda new: setattr(conversations, "faq", new), stop_faq,
                    every=REFRESH_SECONDS if faq_refresh is None else faq_refresh), name="smsgw-faq")
                stack.push_async_callback(_finish, faq_task, stop_faq)
            app[METRICS].track_queue_depth(lambda: outbox.depth)
            app[METRICS].track_oldest_pending(lambda: outbox.oldest_pending_age)
            if app[METRICS].shared:   # several workers: each one's computed gauges written for the others' scrapes
                refresher = asyncio.create_task(app[METRICS].keep_fresh(), name="smsgw-metrics")
                stack.callback(refresher.cancel)
            app[STORE], app[SESSION], app[OUTBOX] = store, session, outbox
            app[INTAKE] = Intake(service, store, outbox, shortcode=config.shortcode,
                                 protection=_protection(config, app[METRICS]))
            yield

    async def stop_taking(app: web.Application) -> None:
        app[GATE].open = False

    app.cleanup_ctx.append(resources)
    if prune_daily:
        app.cleanup_ctx.append(_daily_prune(config, db_path, first_prune_within))
    app.on_shutdown.append(stop_taking)
    for method in ("POST", "GET"):
        app.router.add_route(method, "/carriers/{name}/mo", receive_mo)
        app.router.add_route(method, "/carriers/{name}/dlr", receive_dlr)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    from .api import add_api

    add_api(app, config, lambda: app[STORE], lambda: app[OUTBOX])
    if config.console.enabled:   # the operator console at /console/ (smsgw/console/, CONTRACT §9)
        from .console import add_console

        add_console(app, config, db_path)
    return app


async def _cancelled(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _daily_prune(config: Config, db_path: str, first_within: float | None) -> Callable:
    from .retention import FIRST_RUN_WITHIN, daily_prune

    async def pruning(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(daily_prune(db_path, config, first_within=FIRST_RUN_WITHIN
                                               if first_within is None else first_within), name="smsgw-prune")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return pruning


async def _finish(task: asyncio.Task, stop: asyncio.Event, grace: float = 15.0) -> None:
    """Let a periodic task finish its run under way (cancelled after `grace` seconds)."""
    stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _protection(config: Config, metrics: Metrics) -> Protection:
    """The protection rules of `config`, with the polite reply they send over the hourly limit."""
    limits = config.protection
    polite = reply(RateLimitedAnswer(limits.lookups_per_hour), unicode=config.unicode) if limits else None
    return Protection(limits, polite=polite, registry=metrics.registry)


async def _open_service(config: Config, db_path: str, factory: Callable[[], Any] | None,
                        stack: AsyncExitStack, session: aiohttp.ClientSession, faq: Any = None) -> Any:
    if factory is not None:
        return factory()
    from .service import open_service

    return await stack.enter_async_context(open_service(db_path, config, session=session, faq=faq))


# --- handlers ----------------------------------------------------------------------------

async def receive_mo(request: web.Request) -> web.Response:
    app = request.app
    started = time.perf_counter()
    adapter = _adapter(request)
    try:
        carrier_request = await _read(request)
        adapter.authenticate(carrier_request)
        inbound = adapter.parse_inbound(carrier_request, received_at=datetime.now(timezone.utc))
        adapter.check_recipient(inbound)   # another short code's MO: refused, not stored, not billed
    except RequestError as error:
        return _refuse(request, adapter, error)
    mode = adapter.config.mode
    try:
        if not app[GATE].open:
            raise Unavailable("shutting down")
        stored = await app[INTAKE].take(inbound, mode=mode)
    except Unavailable as exc:
        log.warning("message not taken: gateway unavailable", carrier=adapter.name, reason=str(exc))
        return _web(adapter.render_unavailable(str(exc)))
    response = adapter.render_sync(stored.mo_id, stored.replies) if mode == "sync" \
        else adapter.render_accepted(stored.mo_id)
    _count_and_log(app, adapter, stored, response, started)
    return _web(response)


async def receive_dlr(request: web.Request) -> web.Response:
    app = request.app
    adapter = _adapter(request)
    try:
        carrier_request = await _read(request)
        adapter.authenticate(carrier_request)
        report = adapter.parse_delivery_report(carrier_request)
    except RequestError as error:
        return _refuse(request, adapter, error)
    if not report.mt_id and report.in_reply_to:
        report = replace(report, mt_id=await _first_reply(app[STORE], adapter.name, report.in_reply_to))
    state = await app[STORE].record_delivery(report)
    app[METRICS].delivery_reports.labels(adapter.name, report.state.value).inc()
    log.info("delivery report", carrier=adapter.name, mt_id=report.mt_id, reported=report.state.value,
             state=state.value if state else None, known=state is not None)
    return _web(adapter.render_delivery_ack(report, state))


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    checks = {"gate": "open" if app[GATE].open else "closed", "store": await _probe_store(app)}
    checks["outbox"] = "ok" if app[OUTBOX].alive else "stopped"
    healthy = app[GATE].open and checks["store"] == "ok" and checks["outbox"] == "ok" and app[STORE].alive
    body = {"status": "ok" if healthy else "unavailable", **checks, "mt_queue_depth": app[OUTBOX].depth}
    return web.json_response(body, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    await _probe_store(request.app)   # smsgw_store_up says whether the store takes a write now
    registry = request.app[METRICS]
    return web.Response(body=registry.render(), headers={"Content-Type": registry.content_type})


async def _probe_store(app: web.Application) -> str:
    """"ok" when a write to the message store commits now, else "failing: <why>"; sets smsgw_store_up."""
    try:
        await asyncio.wait_for(app[STORE].probe(), timeout=PROBE_TIMEOUT)
        result = "ok"
    except Unavailable as exc:
        result = f"failing: {exc}"
    except TimeoutError:
        result = f"failing: a write did not commit within {PROBE_TIMEOUT:g} s"
    app[METRICS].store_up.set(1 if result == "ok" else 0)
    return result


def _adapter(request: web.Request) -> CarrierAdapter:
    name = request.match_info["name"]
    adapter = request.app[ADAPTERS].get(name)
    if adapter is None:
        raise UnknownCarrier(f"unknown carrier {name!r}")
    if request.method not in adapter.methods:
        raise web.HTTPMethodNotAllowed(request.method, adapter.methods)
    return adapter


async def _first_reply(store: MessageStore, carrier: str, carrier_id: str) -> str:
    """Our id of the first MT answering the carrier's MO `carrier_id`; "" when there is none."""
    stored = await store.find_mo(carrier, carrier_id)
    return stored.replies[0].id if stored is not None and stored.replies else ""


async def _read(request: web.Request) -> CarrierRequest:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"body over {MAX_BODY // 1024} KiB") from None
    return CarrierRequest(headers=request.headers, content_type=request.content_type.lower(),
                          charset=request.charset, body=body, method=request.method,
                          target=request.raw_path, url=f"{request.scheme}://{request.host}{request.raw_path}",
                          peer=request.remote)


def _refuse(request: web.Request, adapter: CarrierAdapter | None, error: RequestError) -> web.Response:
    carrier = adapter.name if adapter is not None else "unknown"
    request.app[METRICS].parse_errors.labels(carrier, error.kind).inc()
    log.info("request refused", carrier=carrier, path=request.path, status=error.status, kind=error.kind,
             reason=error.reason)
    response = adapter.render_error(error) if adapter is not None \
        else CarrierResponse.json(error.status, {"error": error.reason})
    return _web(response)


def _web(response: CarrierResponse) -> web.Response:
    return web.Response(status=response.status, body=response.body, content_type=response.content_type,
                        charset=response.charset, headers=response.headers)


def _count_and_log(app: web.Application, adapter: CarrierAdapter, stored: StoredMO, response: CarrierResponse,
                   started: float) -> None:
    command = stored.command or "none"
    outcome = (stored.error or "ok") if stored.created else "duplicate"
    app[METRICS].messages.labels(adapter.name, command, outcome).inc()
    if stored.created:
        for mt in stored.replies:
            app[METRICS].replies.labels(adapter.name, str(int(mt.message_type))).inc()
    reply = stored.replies[0] if stored.replies else None
    log.info("message", carrier=adapter.name, carrier_id=stored.carrier_id, mo_id=stored.mo_id, mode=stored.mode,
             command=stored.command, outcome=outcome, error=stored.error, duplicate=not stored.created,
             message_type=int(reply.message_type) if reply else None, segments=reply.segments if reply else None,
             status=response.status, latency_ms=round((time.perf_counter() - started) * 1000, 2))


REQUEST_ID = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}", re.ASCII)


def request_id_of(given: str | None) -> str:
    """The id of a request, logged with each of its lines and sent back in `X-Request-Id`: the
    carrier's own when it sent a sane one (1-64 letters, digits and `._:-`, nothing a log would
    mask as personal data), else a new one."""
    if given is not None and _SANE_REQUEST_ID.fullmatch(given) and mask_text(given) == given:
        return given
    return new_id()[-12:]


@web.middleware
async def _observe(request: web.Request, handler: Callable) -> web.StreamResponse:
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    request_id = request_id_of(request.headers.get(REQUEST_ID))
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await _answer(request, handler)
    finally:
        request.app[METRICS].request_latency.labels(route).observe(time.perf_counter() - started)
    response.headers[REQUEST_ID] = request_id
    request.app[METRICS].responses.labels(route, str(response.status)).inc()
    if response.status == 503:   # shutting down, or the store cannot take a write now: come back later
        response.headers.setdefault("Retry-After", RETRY_AFTER)
    if not request.app[GATE].open:   # shutting down: on a new connection
        response.force_close()
    return response


async def _answer(request: web.Request, handler: Callable) -> web.StreamResponse:
    try:
        if not request.app[GATE].open and request.path.startswith("/carriers/"):
            return _unavailable(request, "shutting down")   # a new request: nothing under way to finish
        return await handler(request)
    except RequestError as error:
        return _refuse(request, None, error)
    except Unavailable as exc:
        return web.json_response({"error": f"unavailable: {exc}"}, status=503)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.reason}, status=exc.status, headers=_allow(exc))
    except HttpProcessingError as exc:   # the body's framing, found bad while the handler read it
        return _refuse(request, None, BadRequest(parse_refusal(exc), kind="malformed_http"))
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("request failed", path=request.path)
        return web.json_response({"error": "internal error"}, status=500)


def _unavailable(request: web.Request, reason: str) -> web.Response:
    adapter = request.app[ADAPTERS].get(request.match_info.get("name", ""))
    if adapter is None:
        return web.json_response({"error": f"unavailable: {reason}"}, status=503)
    return _web(adapter.render_unavailable(reason))


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}
