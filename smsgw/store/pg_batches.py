"""Group commit on PostgreSQL: operations that arrive while one statement is under way go together in the next.

SQLite's writer commits the operations waiting for it in one transaction (writer.py); a
PostgreSQL gateway gets the same from `Batches`: the first operation starts a statement at
once, those arriving meanwhile wait for it to end and then go in one statement, and so on. Each
caller gets its own result once its batch is committed, or the batch's error. One statement per
batch instead of one per operation saves the gateway a round trip per operation (the protocol's
send, wake-up and reply on the event loop) and the server a commit each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batches(Generic[Item, Result]):
    """`await batches.add(item)`: `run(items)` of the batch it went in, one result (or exception) per item."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]], name: str,
                 *, parallel: int = 1, linger: float = 0.0) -> None:
        self._run = run
        self._linger = linger
        self._name = name
        self._parallel = parallel
        self._queued: list[tuple[Item, asyncio.Future[Result]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(self, item: Item) -> Result:
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queued.append((item, done))
        if len(self._tasks) >= self._parallel:   # (a task done has left its loop: it takes nothing more)
            self._tasks = {task for task in self._tasks if not task.done()}
        if len(self._tasks) < self._parallel:
            self._tasks.add(asyncio.create_task(self._batches(), name=self._name))
        return await done

    async def finished(self) -> None:
        """When the batches queued so far are done (before the pool closes)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _batches(self) -> None:
        while self._queued:
            if self._linger:   # more of them, fewer statements, for operations nobody answers on
                await asyncio.sleep(self._linger)
            batch, self._queued = self._queued, []
            try:
                results: Sequence[Result | BaseException] = await self._run([item for item, _ in batch])
            except Exception as exc:   # every operation of the batch failed alike (the database unreachable)
                results = [exc] * len(batch)
            for (_, done), result in zip(batch, results, strict=True):
                if done.done():   # its caller was cancelled: the outcome stands, nobody to tell
                    continue
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(result)
