"""Identifiers of MOs, MTs and requests: unique across processes and restarts, cheap to make.

A UUID-formatted value whose high 64 bits are random per process and whose low 64 bits count
up. `uuid.uuid4()` reads 16 bytes from the kernel for every id; on the gateway's hot path
that system call released and re-took the GIL three times per message (9% of the main
thread's samples under load). A forked child draws a new prefix.
"""

from __future__ import annotations

import itertools
import os
import uuid

_prefix = 0
_counter = itertools.count(1)


def _reseed() -> None:
    global _prefix, _counter
    _prefix = int.from_bytes(os.urandom(8), "big") << 64
    _counter = itertools.count(1)


_reseed()
os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """A new identifier, e.g. `3f2c9a1e-77b0-41d2-0000-000000000001`."""
    return str(uuid.UUID(int=_prefix | next(_counter)))
