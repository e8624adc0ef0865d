"""A client of a running gateway, speaking the generic carrier's format (`smsgw replay --url`)."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from .adapters.generic import signature_headers
from .errors import ReplayError


async def replay_message(session: aiohttp.ClientSession, url: str, carrier: str, secret: str | None,
                         msisdn: str, text: str, mo_id: str, *, to: str = "8079") -> list[dict[str, Any]]:
    """Send one MO to `{url}/carriers/{carrier}/mo`, signed with the current time as
    `X-Smsgw-Timestamp` when `secret` is given; return its replies.

    The carrier must be in sync mode. Anything but a 200 with a `replies` list raises
    `ReplayError` naming the status and the server's reason.
    """
    body = json.dumps({"id": mo_id, "from": msisdn, "to": to, "text": text}, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        headers.update(signature_headers(secret, body, timestamp=int(time.time())))
    endpoint = f"{url.rstrip('/')}/carriers/{carrier}/mo"
    try:
        async with session.post(endpoint, data=body, headers=headers) as response:
            raw = await response.read()
            status = response.status
    except aiohttp.ClientError as exc:
        raise ReplayError(f"{endpoint}: {exc}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status == 202:
        raise ReplayError(f"{endpoint}: carrier {carrier!r} is in async mode; replay needs a sync carrier")
    if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("replies"), list):
        if isinstance(answer, dict):
            reason = answer.get("error") or "no 'replies' list in the answer"
        else:
            reason = raw[:200].decode("utf-8", "replace")
        raise ReplayError(f"{endpoint}: HTTP {status}: {reason}")
    return answer["replies"]
