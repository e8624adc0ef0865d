"""The agency's sending API (CONTRACT §8): HTTP handlers on the gateway's app.

    POST /api/v1/messages        one message: 201 {id, status, encoding, segments}; 200 the same
                                 for a retry with the same Idempotency-Key
    GET  /api/v1/messages/{id}   {id, to, class, status, updated_at}
    POST /api/v1/batches         many (JSON, or text/csv): checked whole, then 202 {id}
    GET  /api/v1/batches/{id}    its messages counted by status
    GET  /api/v1/openapi.json    the OpenAPI 3.1 description (openapi.json beside this module)

A request is checked in this order: key 401, body 413 (over 16 MiB), JSON 400 (naming the
field), class 403, content 422 (phone, empty text, over 3 parts), then in the store: the same
Idempotency-Key again (200 with the first result; 422 when the request differs), rate 429.
Each refusal is `{"error": "<reason>"}`; never a 5xx for what a client sent. What a message
becomes (phone to carrier, text to its encoding) is decided here (api_messages.py); the store
keeps it with its MT in one transaction (store/api.py); the outbox sends it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources as package_files
from typing import Any

from aiohttp import web

from .api_callbacks import CallbackSender
from .api_keys import authenticate
from .api_messages import Refusal, batch_from_csv, batch_from_json, message_from_json
from .config import Config
from .ids import new_id
from .logs import get_logger
from .phones import mask
from .store.api import ApiKey, ApiStore, Lease, PendingMT
from .store.api_open import open_api

MAX_API_BODY = 16 * 1024 * 1024
OUTBOX_CHUNK = 2_000   # a batch's MTs handed to the outbox this many at a time
API_STORE = web.AppKey("api_store", ApiStore)
API_CONFIG = web.AppKey("api_config", Config)
# The ttl end (or None) of each API MT this process stored and has not tried yet: the outbox's screen
# needs no store round trip for them; any other MT without MO (stored by another process, retried,
# a notice) is checked in the store.
EXPIRIES = web.AppKey("api_expiries", dict)
CALLBACKS = web.AppKey("api_callbacks", CallbackSender)

log = get_logger(component="api")


def add_api(app: web.Application, config: Config, store_of: Callable[[], Any], outbox_of: Callable[[], Any]) -> None:
    """The API's routes and its callback sender on `app`, over the gateway's store and outbox
    (`store_of()`, `outbox_of()`: known once the gateway's resources are open)."""
    app[API_CONFIG] = config
    app[EXPIRIES] = {}

    async def api_resources(app: web.Application) -> AsyncIterator[None]:
        messages = store_of()
        store = await open_api(messages)
        app[API_STORE] = store
        outbox = outbox_of()
        outbox.screen = _screen(store, app[EXPIRIES])
        sender = CallbackSender(store)
        app[CALLBACKS] = sender
        heard = outbox.on_outcome

        def on_outcome(outcome: str) -> None:   # an MT's status moved: maybe an API message's
            heard(outcome)
            sender.wake()

        outbox.on_outcome = on_outcome
        sender.start()
        yield
        await sender.stop()

    app.cleanup_ctx.append(api_resources)
    app.router.add_post("/api/v1/messages", post_message)
    app.router.add_get("/api/v1/messages/{id}", get_message)
    app.router.add_post("/api/v1/batches", post_batch)
    app.router.add_get("/api/v1/batches/{id}", get_batch)
    app.router.add_get("/api/v1/openapi.json", openapi)


def _screen(store: ApiStore, expiries: dict[str, float | None]) -> Callable[[PendingMT], Any]:
    """The outbox's check before each send: an API message past its ttl is expired, not sent."""
    unknown = object()

    async def screen(pending: PendingMT) -> bool:
        if pending.mt.mo_id:   # a reply: never an API message
            return True
        now = time.time()
        expires_at = expiries.pop(pending.mt.id, unknown)
        if expires_at is None or (expires_at is not unknown and expires_at > now):
            return True
        return not await store.expire_if_due(pending.mt.id, now)

    return screen


def refuse(status: int, reason: str, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    return web.json_response({"error": reason, **extra}, status=status, headers=headers)


async def _key(request: web.Request) -> ApiKey:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refusal(401, "Authorization: a 'Bearer <key>' header is needed")
    key = await authenticate(request.app[API_STORE], token.strip())
    if key is None:
        raise Refusal(401, "Authorization: unknown or revoked key")
    return key


async def _body(request: web.Request) -> bytes:
    try:
        return await request.clone(client_max_size=MAX_API_BODY).read()
    except web.HTTPRequestEntityTooLarge:
        raise Refusal(413, f"body over {MAX_API_BODY // (1024 * 1024)} MiB") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refusal(400, "body: not valid UTF-8") from None
    except ValueError as exc:
        raise Refusal(400, f"body: not valid JSON ({exc})") from None
    except RecursionError:
        raise Refusal(400, "body: not valid JSON (nested too deeply)") from None


def _idempotency_key(request: web.Request) -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not 1 <= len(value) <= 255 or not value.isprintable():
        raise Refusal(400, "Idempotency-Key: 1-255 printable characters")
    return value


def _lease(request: web.Request) -> Lease | None:
    from .gateway import STORE

    store = request.app[STORE]
    return Lease(store.lease_seconds, store.owner) if store.shared else None


def _outbox_add(request: web.Request, pending: list[PendingMT], expiries: dict[str, float | None]) -> None:
    from .gateway import OUTBOX

    outbox = request.app[OUTBOX]
    known = request.app[EXPIRIES]
    for item in pending:
        if item.not_before is None:   # sent now: its first screen is soon (a held one is checked in the store)
            known[item.mt.id] = expiries.get(item.mt.id)
        outbox.add(item)


def _digest(request: web.Request, body: bytes) -> str:
    """What tells a retry (the same request again) from another request reusing its Idempotency-Key."""
    return hashlib.sha256(request.path_qs.encode() + b"\n" + body).hexdigest()


def _reused(first_id: str) -> web.Response:
    return refuse(422, f"Idempotency-Key: used before for another request (its result: {first_id}); "
                       "a retry must send the same request")


def _too_many(retry_after: float) -> web.Response:
    seconds = max(1, math.ceil(retry_after))
    return refuse(429, f"over this key's rate: try again in {seconds} s", {"Retry-After": str(seconds)})


async def _accept(request: web.Request, parse: Callable[[web.Request, bytes, ApiKey, float], Any]) -> tuple:
    """The key, the Idempotency-Key, the body and what `parse` makes of it; Refusal when any is wrong."""
    key = await _key(request)
    idempotency_key = _idempotency_key(request)
    body = await _body(request)
    return key, idempotency_key, body, await parse(request, body, key, time.time())


def _not_taken(mismatch: bool, first_id: str, retry_after: float | None) -> web.Response | None:
    """The answer to a request the store did not take: its Idempotency-Key reused, or over the key's rate."""
    if mismatch:
        return _reused(first_id)
    if retry_after is not None:
        return _too_many(retry_after)
    return None


async def _one_message(request: web.Request, body: bytes, key: ApiKey, now: float) -> Any:
    return message_from_json(_json(body), key, request.app[API_CONFIG], now)


async def _batch_messages(request: web.Request, body: bytes, key: ApiKey, now: float) -> Any:
    config = request.app[API_CONFIG]
    if request.content_type == "text/csv":
        return await asyncio.to_thread(batch_from_csv, body, dict(request.query), key, config, now)
    return await asyncio.to_thread(lambda: batch_from_json(_json(body), key, config, now))


async def post_message(request: web.Request) -> web.Response:
    try:
        key, idempotency_key, body, new = await _accept(request, _one_message)
    except Refusal as refusal:
        return refusal.response()
    taken = await request.app[API_STORE].store_message(key, idempotency_key, new, now=time.time(),
                                                       lease=_lease(request), request_hash=_digest(request, body))
    refused = _not_taken(taken.mismatch, taken.message.id if taken.message else "", taken.retry_after)
    if refused is not None:
        return refused
    if taken.pending is not None:
        _outbox_add(request, [taken.pending], {new.mt.id: new.expires_at})
    if taken.created:
        request.app[CALLBACKS].wake()   # its first callback ("queued") is in the store now
    message = taken.message
    log.info("api message", key=key.name, id=message.id, to=mask(message.to), message_class=message.message_class,
             status=message.status, created=taken.created)
    return web.json_response({"id": message.id, "status": message.status, "encoding": message.encoding,
                              "segments": message.segments}, status=201 if taken.created else 200)


async def get_message(request: web.Request) -> web.Response:
    try:
        key = await _key(request)
    except Refusal as refusal:
        return refusal.response()
    message = await request.app[API_STORE].message(key.name, request.match_info["id"])
    if message is None:
        return refuse(404, "id: no message of this key has this id")
    return web.json_response(message.public())


async def post_batch(request: web.Request) -> web.Response:
    try:
        key, idempotency_key, body, messages = await _accept(request, _batch_messages)
    except Refusal as refusal:
        return refusal.response()
    taken = await request.app[API_STORE].store_batch(key, idempotency_key, new_id(), messages, now=time.time(),
                                                     lease=_lease(request), request_hash=_digest(request, body))
    refused = _not_taken(taken.mismatch, taken.batch_id, taken.retry_after)
    if refused is not None:
        return refused
    expiries = {new.mt.id: new.expires_at for new in messages} if taken.created else {}
    for start in range(0, len(taken.pending), OUTBOX_CHUNK):   # the loop serves others between chunks
        _outbox_add(request, taken.pending[start:start + OUTBOX_CHUNK], expiries)
        await asyncio.sleep(0)
    if taken.created:
        request.app[CALLBACKS].wake()
    log.info("api batch", key=key.name, id=taken.batch_id, recipients=len(messages), created=taken.created)
    return web.json_response({"id": taken.batch_id}, status=202 if taken.created else 200)


async def get_batch(request: web.Request) -> web.Response:
    try:
        key = await _key(request)
    except Refusal as refusal:
        return refusal.response()
    counts = await request.app[API_STORE].batch_counts(key.name, request.match_info["id"])
    if counts is None:
        return refuse(404, "id: no batch of this key has this id")
    return web.json_response({"id": request.match_info["id"], "total": sum(counts.values()), "counts": counts})


_OPENAPI: bytes | None = None


async def openapi(request: web.Request) -> web.Response:
    global _OPENAPI
    if _OPENAPI is None:
        _OPENAPI = package_files.files("smsgw").joinpath("openapi.json").read_bytes()
    return web.Response(body=_OPENAPI, content_type="application/json")
