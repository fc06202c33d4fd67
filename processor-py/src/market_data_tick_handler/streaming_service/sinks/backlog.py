"""The backlog of a sink that talks to a server (Redis, BigQuery, ...): items wait in order while the
server cannot take them, and a background task sends them again with exponential back-off.

- **In order.** Items are sent oldest first, one at a time; an item put while others wait goes behind
  them. ``deliver`` sends an item at once when nothing waits (the caller awaits that one round trip) and
  queues it otherwise; ``put`` only queues (the background task sends it).
- **Catching up.** While the server fails, ``deliver`` returns at once (the caller goes on; its items
  wait). Once the server answers again, ``deliver`` queues its item and returns when nothing waits any
  more (or at the next failure): the caller is held back while the backlog drains, as it is held for one
  round trip when nothing waits. Otherwise a caller faster than one round trip per item keeps the
  backlog full after a single timeout, and it never drains (the serve soak lost 742,000 candles so).
- **Retry.** A transient failure (the ``transient`` exception types: unreachable, timed out, busy) leaves
  the item at the head; after ``n`` failures in a row the next try waits ``first_retry_s * 2 ** (n - 1)``
  seconds, at most ``max_retry_s``. The same item object is sent again, so whatever the sink fixed at
  the first try (stream entry ids, an append offset) stays fixed and the server can refuse a duplicate.
- **Refused.** Any other exception is the server (or the item) refusing it: never sent again.
- **Bounded.** Over ``limit_bytes`` (of the items' ``nbytes``) the oldest item is dropped until the
  backlog fits, the newest always staying; an item in flight is never dropped, and with ``keep_head``
  the head never is (a sink whose server may already have the head's first try, at an offset later
  items depend on).
- **Overflow.** With an ``overflow`` (``sinks/spill.py``: files), ``limit_bytes`` bounds the items kept
  in memory instead, and nothing is dropped here: an item that does not fit goes to the overflow, and
  so does every later one while the overflow holds any, so that the memory holds the oldest items and
  the overflow the rest, in order. The background task takes items back from the overflow as memory
  frees up. At close the items still in memory are handed to the overflow (``keep``) instead of being
  given back. Each item gets a sequence number when it is put (from ``overflow.next_seq()`` on), the
  order the overflow keeps them in across restarts.
- **Counted by the sink.** Every outcome is told to the sink (:class:`Delivery`), which counts and logs
  it under its own names.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar


class Item(Protocol):
    @property
    def nbytes(self) -> int:
        """What the item costs while it waits (memory), for ``limit_bytes``."""
        ...


T = TypeVar("T", bound=Item)
T_contra = TypeVar("T_contra", bound=Item, contravariant=True)


class Overflow(Protocol[T]):
    """Where a backlog keeps, in order, the items that do not fit in its memory (``sinks/spill.py``)."""

    def __len__(self) -> int:
        """Items waiting in it (one being read back included)."""
        ...

    @property
    def next_nbytes(self) -> int:
        """``nbytes`` of its oldest item (0 when empty)."""
        ...

    def next_seq(self) -> int:
        """A sequence number above every item it holds (items of earlier runs too)."""
        ...

    def put(self, seq: int, item: T) -> None:
        """``item`` behind what waits in it; returns at once."""
        ...

    async def take(self) -> tuple[int, T] | None:
        """Its oldest item, no longer waiting in it (None: it had none it could give back)."""
        ...

    def done(self, seq: int) -> None:
        """The item ``seq`` left the backlog (sent or refused): a copy kept of it can go."""
        ...

    async def keep(self, items: list[tuple[int, T]]) -> list[T]:
        """At close: the backlog's items in memory, oldest first (all older than its own), to be kept
        too; returns the items it could not keep."""
        ...

    async def close(self) -> None: ...


class Delivery(Protocol[T_contra]):
    """What a backlog asks of its sink: how to send an item, and what to count of each outcome."""

    async def send(self, item: T_contra) -> Any:
        """Send ``item``; raise one of the backlog's ``transient`` exceptions to have it sent again."""
        ...

    def sent(self, item: T_contra, result: Any) -> None:
        """``send`` returned ``result``."""
        ...

    def failed(self, item: T_contra, error: BaseException, retry_in_s: float, inline: bool) -> None:
        """A transient failure: ``item`` waits and is sent again in ``retry_in_s``; ``inline``: it was the
        first try of ``deliver`` (the item was not waiting yet), not a retry."""
        ...

    def refused(self, item: T_contra, error: BaseException) -> None:
        """``item`` was refused (any other exception): it is not sent again."""
        ...

    def dropped(self, item: T_contra) -> None:
        """``item`` was dropped to keep the backlog within its limit."""
        ...

    def backlog_changed(self) -> None:
        """Items came or went (to keep the sink's figures of what waits)."""
        ...


class _Entry(Generic[T]):
    __slots__ = ("item", "seq")

    def __init__(self, item: T, seq: int) -> None:
        self.item = item
        self.seq = seq


class Backlog(Generic[T]):
    """See the module docstring. ``refill``, when given, is called before each send and when the
    backlog is idle: it may ``put`` items (a sink's batches whose time has come) and returns in how many
    seconds it wants to be called again (None: only when woken by a ``put``)."""

    def __init__(
        self,
        delivery: Delivery[T],
        *,
        limit_bytes: int,
        first_retry_s: float,
        max_retry_s: float,
        transient: tuple[type[BaseException], ...],
        keep_head: bool = False,
        refill: Callable[[], float | None] | None = None,
        overflow: Overflow[T] | None = None,
    ) -> None:
        self._delivery = delivery
        self.limit_bytes = limit_bytes
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self._transient = transient
        self._keep_head = keep_head
        self._refill = refill
        self.overflow = overflow
        self._spilling = False  # the overflow is used (from start on)
        self._items: deque[_Entry[T]] = deque()
        self.nbytes = 0  # of the items in memory
        self._seq = 0
        self._in_flight: T | None = None
        self._failures = 0  # in a row, at the head
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._progress = asyncio.Event()  # an item left, a try failed, or the backlog stopped
        self._worker: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """Items waiting in memory (not those in the overflow)."""
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[T]:
        """The items waiting in memory, oldest first."""
        return (e.item for e in self._items)

    def _overflowing(self) -> int:
        """Items waiting in the overflow (0 without one, or before ``start``)."""
        return len(self.overflow) if self._spilling and self.overflow is not None else 0

    def retry_in(self, failures: int) -> float:
        """Seconds to wait before the next try after ``failures`` failures in a row."""
        return min(self.max_retry_s, self.first_retry_s * 2 ** (failures - 1))

    def start(self) -> None:
        """Start the background task that sends what waits (needs a running event loop); from now on
        the overflow (if any, and opened) takes what does not fit in memory."""
        if self._worker is None:
            if self.overflow is not None:
                self._spilling = True
                self._seq = max(self._seq, self.overflow.next_seq())
                if len(self.overflow):
                    self._idle.clear()
            self._stop.clear()
            self._worker = asyncio.create_task(self._run())

    def wake(self) -> None:
        """Have the background task call ``refill`` now (something changed what it would return)."""
        self._wake.set()

    def put(self, item: T) -> None:
        """Queue ``item`` behind what waits; over the limit, drop the oldest that may be dropped (with an
        overflow: put it there)."""
        seq = self._seq
        self._seq += 1
        self._idle.clear()
        if self._spilling and (
            self._overflowing() or (self._items and self.nbytes + item.nbytes > self.limit_bytes)
        ):
            self.overflow.put(seq, item)  # type: ignore[union-attr]
        else:
            self._items.append(_Entry(item, seq))
            self.nbytes += item.nbytes
            while self.overflow is None and self.nbytes > self.limit_bytes and len(self._items) > 1:
                at = 1 if self._keep_head or self._items[0].item is self._in_flight else 0
                dropped = self._items[at].item
                del self._items[at]
                self.nbytes -= dropped.nbytes
                self._delivery.dropped(dropped)
        self._delivery.backlog_changed()
        self._wake.set()

    async def deliver(self, item: T) -> None:
        """Send ``item`` now when nothing waits, and return once the server took it (or refused it);
        when it fails, or when others wait, queue it. One caller at a time."""
        if self._items or self._overflowing():
            self.put(item)
            await self._caught_up()
            return
        self._in_flight = item
        try:
            result = await self._delivery.send(item)
        except self._transient as exc:
            self._failures = 1
            self._delivery.failed(item, exc, self.retry_in(1), True)
            self.put(item)
            return
        except Exception as exc:
            self._delivery.refused(item, exc)
            return
        finally:
            self._in_flight = None
        self._delivery.sent(item, result)

    async def _caught_up(self) -> None:
        """Wait while items wait and the server takes them: until nothing waits, the server fails, or
        the backlog stops (at once without a background task to send them)."""
        while (self._items or self._overflowing()) and not self._failures:
            if self._worker is None or self._worker.done() or self._stop.is_set():
                return
            self._progress.clear()
            await self._progress.wait()

    async def _take_back(self) -> None:
        """Items from the overflow into memory while they fit (one at least when memory is empty)."""
        overflow = self.overflow
        while (
            self._overflowing()
            and not self._stop.is_set()
            and (not self._items or self.nbytes + overflow.next_nbytes <= self.limit_bytes)  # type: ignore[union-attr]
        ):
            taken = await overflow.take()  # type: ignore[union-attr]
            if taken is not None:
                seq, item = taken
                self._items.append(_Entry(item, seq))
                self.nbytes += item.nbytes
                self._delivery.backlog_changed()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the backlog is being closed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    async def _run(self) -> None:
        while not self._stop.is_set():
            wait_s = self._refill() if self._refill is not None else None
            await self._take_back()
            if self._stop.is_set():
                break
            if not self._items:
                if not self._overflowing():
                    self._idle.set()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
                continue
            if self._failures:
                await self._pause(self.retry_in(self._failures))
                if not self._items or self._stop.is_set():
                    continue
            entry = self._items[0]
            item = entry.item
            self._in_flight = item
            try:
                result = await self._delivery.send(item)
            except self._transient as exc:
                self._failures += 1
                self._delivery.failed(item, exc, self.retry_in(self._failures), False)
                self._progress.set()
                continue
            except Exception as exc:
                self._delivery.refused(item, exc)
            else:
                self._delivery.sent(item, result)
            finally:
                self._in_flight = None
            self._failures = 0
            self._items.popleft()  # the head: an item in flight is never dropped
            self.nbytes -= item.nbytes
            if self._spilling:
                self.overflow.done(entry.seq)  # type: ignore[union-attr]
            self._delivery.backlog_changed()
            self._progress.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until nothing waits (at most ``timeout`` s); True when nothing does."""
        self._wake.set()
        if self._worker is not None and not self._worker.done() and (self._items or self._overflowing()):
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: wait_for can lose a cancel (3.11)
                async with asyncio.timeout(timeout):
                    await self._idle.wait()
        return not self._items and not self._overflowing()

    async def close(self, timeout: float | None, in_flight_s: float | None = None) -> list[T]:
        """Flush (at most ``timeout`` s), stop the background task, and return what could not be sent
        (no longer waiting: the sink counts it as lost). ``in_flight_s``: how long to wait for a send in
        flight to end (its outcome then known: sent, or kept); None: it is cancelled. With an overflow,
        what is left in memory goes to the overflow, and what it could not keep is returned."""
        await self.flush(timeout)
        worker, self._worker = self._worker, None
        if worker is not None:
            self._stop.set()
            self._wake.set()
            self._progress.set()
            if in_flight_s is not None and not worker.done():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(in_flight_s):
                        await asyncio.shield(worker)
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._failures = 0
        left = [(e.seq, e.item) for e in self._items]
        self._items.clear()
        self.nbytes = 0
        if self._spilling:
            assert self.overflow is not None
            unkept = await self.overflow.keep(left) if left else []
            await self.overflow.close()
            self._spilling = False
        else:
            unkept = [item for _, item in left]
        if left:
            self._delivery.backlog_changed()
        return unkept
