"""The backlog every sink that talks to a server shares (streaming_service/sinks/backlog.py), against a
stand-in server that is up, down or refuses: order, retry with back-off, the bound, and close."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from market_data_tick_handler.streaming_service.sinks import Backlog


@dataclass(frozen=True, eq=False)
class Item:
    name: str
    nbytes: int = 10


class Server:
    """A stand-in server and the sink's side of the backlog: records what it took and every outcome."""

    def __init__(self, up: bool = True, refuse: frozenset[str] = frozenset()) -> None:
        self.up = up
        self.refuse = refuse
        self.taken: list[str] = []
        self.events: list[tuple[Any, ...]] = []
        self.hold: asyncio.Event | None = None  # set: a send waits for it (an item in flight)
        self.sending = asyncio.Event()
        self.round_trip_s = 0.0

    async def send(self, item: Item) -> str:
        self.sending.set()
        if self.hold is not None:
            await self.hold.wait()
        await asyncio.sleep(self.round_trip_s)
        if item.name in self.refuse:
            raise ValueError(f"no {item.name}")
        if not self.up:
            raise ConnectionError("down")
        self.taken.append(item.name)
        return f"ok {item.name}"

    def sent(self, item: Item, result: Any) -> None:
        self.events.append(("sent", item.name, result))

    def failed(self, item: Item, error: BaseException, retry_in_s: float, inline: bool) -> None:
        self.events.append(("failed", item.name, retry_in_s, inline))

    def refused(self, item: Item, error: BaseException) -> None:
        self.events.append(("refused", item.name, str(error)))

    def dropped(self, item: Item) -> None:
        self.events.append(("dropped", item.name))

    def backlog_changed(self) -> None:
        pass

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e[1:] for e in self.events if e[0] == kind]


def _backlog(server: Server, limit: int = 1_000, keep_head: bool = False, **kw: Any) -> Backlog[Item]:
    return Backlog(
        server,
        limit_bytes=limit,
        first_retry_s=kw.pop("first_retry_s", 0.01),
        max_retry_s=kw.pop("max_retry_s", 0.04),
        transient=(ConnectionError, TimeoutError, OSError),
        keep_head=keep_head,
        **kw,
    )


def test_the_retry_delay_doubles_from_the_first_up_to_the_cap():
    serve_like = _backlog(Server(), first_retry_s=0.05, max_retry_s=2.0)
    assert [serve_like.retry_in(n) for n in range(1, 9)] == pytest.approx(
        [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    )
    persist_like = _backlog(Server(), first_retry_s=0.1, max_retry_s=10.0)
    assert [persist_like.retry_in(n) for n in range(1, 9)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0]
    )


async def test_an_item_goes_at_once_when_nothing_waits():
    server = Server()
    backlog = _backlog(server)
    await backlog.deliver(Item("a"))
    assert server.taken == ["a"] and server.events == [("sent", "a", "ok a")]
    assert len(backlog) == 0 and backlog.nbytes == 0


async def test_while_the_server_is_down_items_wait_in_order_and_go_once_it_is_back():
    server = Server(up=False)
    backlog = _backlog(server)
    backlog.start()
    for name in "abc":
        await backlog.deliver(Item(name))  # returns: the caller is not held up
    assert [i.name for i in backlog] == ["a", "b", "c"] and backlog.nbytes == 30
    for _ in range(500):  # retried meanwhile: after 0.01 s, then 0.02 s, then every 0.04 s
        if len(server.of("failed")) >= 4:
            break
        await asyncio.sleep(0.01)
    server.up = True
    assert await backlog.flush(5)
    assert server.taken == ["a", "b", "c"]
    assert server.of("sent") == [("a", "ok a"), ("b", "ok b"), ("c", "ok c")]
    failed = server.of("failed")
    assert failed[0] == ("a", pytest.approx(0.01), True)  # the first try, by deliver
    assert failed[1:4] == [
        ("a", pytest.approx(0.02), False),
        ("a", pytest.approx(0.04), False),
        ("a", pytest.approx(0.04), False),
    ]
    assert {name for name, *_ in failed} == {"a"}  # only the head is tried
    await backlog.close(1)


async def test_once_the_server_answers_again_deliver_waits_until_the_backlog_drained():
    """A caller faster than one round trip per item (the processor at a replay's speed) would keep a
    backlog left by an outage full for ever if ``deliver`` only queued: once the server answers, each
    ``deliver`` returns with nothing waiting, so the backlog drains; while the server fails it does not
    hold the caller up."""
    server = Server(up=False)
    backlog = _backlog(server)
    backlog.start()
    for name in "abc":
        await backlog.deliver(Item(name))  # the server is down: queued, the caller goes on
    assert [i.name for i in backlog] == ["a", "b", "c"]
    server.round_trip_s = 0.05
    server.up = True
    for _ in range(500):  # the background task's next try takes the head: the server answers again
        if server.taken:
            break
        await asyncio.sleep(0.005)
    assert server.taken == ["a"] and [i.name for i in backlog] == ["b", "c"]
    for name in "defgh":
        await backlog.deliver(Item(name))
        assert len(backlog) == 0, f"deliver({name}) returned with {[i.name for i in backlog]} waiting"
    assert server.taken == list("abcdefgh")
    server.up = False  # down again: deliver does not wait for a backlog it cannot drain
    await backlog.deliver(Item("i"))
    await backlog.deliver(Item("j"))
    assert [i.name for i in backlog] == ["i", "j"]
    await backlog.close(0.1)


async def test_a_refused_item_is_not_sent_again_and_the_next_one_goes():
    server = Server(refuse=frozenset({"b"}))
    backlog = _backlog(server)
    backlog.start()
    for name in "abc":
        backlog.put(Item(name))
    assert await backlog.flush(5)
    assert server.taken == ["a", "c"]
    assert server.of("refused") == [("b", "no b")] and not server.of("failed")
    await backlog.deliver(Item("b"))  # refused at once, too
    assert server.of("refused") == [("b", "no b"), ("b", "no b")] and len(backlog) == 0
    await backlog.close(1)


def test_over_the_limit_the_oldest_is_dropped_and_the_newest_stays():
    server = Server()
    backlog = _backlog(server, limit=25)  # two items of 10 bytes fit, three do not
    for name in "abcd":
        backlog.put(Item(name))  # no event loop: nothing is sent
    assert [i.name for i in backlog] == ["c", "d"] and backlog.nbytes == 20
    assert server.of("dropped") == [("a",), ("b",)]
    big = _backlog(Server(), limit=25)
    big.put(Item("huge", nbytes=100))
    assert [i.name for i in big] == ["huge"]  # alone over the limit: the newest always stays


def test_with_keep_head_the_head_stays_and_the_oldest_behind_it_goes():
    server = Server()
    backlog = _backlog(server, limit=25, keep_head=True)
    for name in "abcd":
        backlog.put(Item(name))
    assert [i.name for i in backlog] == ["a", "d"]
    assert server.of("dropped") == [("b",), ("c",)]


async def test_an_item_in_flight_is_never_dropped():
    server = Server()
    server.hold = asyncio.Event()
    backlog = _backlog(server, limit=25)
    backlog.start()
    backlog.put(Item("a"))
    await asyncio.wait_for(server.sending.wait(), 5)  # "a" is being sent
    backlog.put(Item("b"))
    backlog.put(Item("c"))  # over: "a" is in flight, so "b" goes
    assert [i.name for i in backlog] == ["a", "c"] and server.of("dropped") == [("b",)]
    server.hold.set()
    assert await backlog.flush(5)
    assert server.taken == ["a", "c"]
    await backlog.close(1)


async def test_close_gives_back_what_could_not_be_sent_and_stops():
    server = Server(up=False)
    backlog = _backlog(server)
    backlog.start()
    backlog.put(Item("a"))
    backlog.put(Item("b"))
    assert not await backlog.flush(0.05)
    left = await backlog.close(0.05)
    assert [i.name for i in left] == ["a", "b"]
    assert len(backlog) == 0 and backlog.nbytes == 0
    server.up = True
    await asyncio.sleep(0.1)
    assert server.taken == []  # stopped: nothing more is sent


async def test_refill_is_asked_again_when_its_time_comes_and_when_woken():
    server = Server()
    calls: list[float] = []
    due: list[float] = []

    def refill() -> float | None:
        now = time.monotonic()
        calls.append(now)
        while due and due[0] <= now:
            due.pop(0)
            backlog.put(Item("t0"))
        return max(0.0, due[0] - now) if due else None

    backlog = _backlog(server, refill=refill)
    backlog.start()
    await asyncio.sleep(0.02)
    idle = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == idle  # nothing due: not asked again until woken
    started = time.monotonic()
    due.append(started + 0.05)
    backlog.wake()
    for _ in range(100):
        if server.taken:
            break
        await asyncio.sleep(0.01)
    assert server.taken == ["t0"] and time.monotonic() - started >= 0.05
    await backlog.close(1)


class ListOverflow:
    """A stand-in disk tier (sinks/spill.py is the real one): keeps what it is given in a list."""

    def __init__(self, earlier: list[tuple[int, Item]] = ()) -> None:
        self.items: list[tuple[int, Item]] = list(earlier)  # an earlier run's, as found at start
        self.done_seqs: list[int] = []
        self.kept: list[tuple[int, Item]] = []
        self.closed = False

    def __len__(self) -> int:
        return len(self.items)

    @property
    def next_nbytes(self) -> int:
        return self.items[0][1].nbytes if self.items else 0

    def next_seq(self) -> int:
        return max((s for s, _ in self.items), default=-1) + 1

    def put(self, seq: int, item: Item) -> None:
        self.items.append((seq, item))

    async def take(self) -> tuple[int, Item] | None:
        await asyncio.sleep(0)  # read back in a thread, in the real one: a put meanwhile goes behind
        return self.items.pop(0) if self.items else None

    def done(self, seq: int) -> None:
        self.done_seqs.append(seq)

    async def keep(self, items: list[tuple[int, Item]]) -> list[Item]:
        self.kept = items
        return [item for _, item in items if item.name == "unkeepable"]

    async def close(self) -> None:
        self.closed = True


async def test_with_an_overflow_what_does_not_fit_waits_there_in_order_and_comes_back_in_order():
    server = Server(up=False)
    overflow = ListOverflow()
    backlog = _backlog(server, limit=25, keep_head=True, overflow=overflow)  # two items fit in memory
    backlog.start()
    for name in "abcdef":
        backlog.put(Item(name))
    assert [i.name for i in backlog] == ["a", "b"] and backlog.nbytes == 20
    assert [(s, i.name) for s, i in overflow.items] == [(2, "c"), (3, "d"), (4, "e"), (5, "f")]
    assert not server.of("dropped")  # nothing is dropped: it waits on disk
    for _ in range(500):
        if len(server.of("failed")) >= 2:
            break
        await asyncio.sleep(0.01)
    backlog.put(Item("g"))  # the overflow holds items: behind them, though memory is not over
    assert overflow.items[-1][1].name == "g" and len(backlog) == 2
    server.up = True
    assert await backlog.flush(5)
    assert server.taken == list("abcdefg") and backlog.nbytes == 0 and not overflow.items
    assert sorted(overflow.done_seqs) == list(range(7))  # each told once it left
    await backlog.close(1)
    assert overflow.closed and overflow.kept == []


async def test_an_earlier_runs_items_in_the_overflow_go_before_new_ones():
    server = Server()
    overflow = ListOverflow([(7, Item("old1")), (8, Item("old2"))])
    backlog = _backlog(server, limit=1_000, overflow=overflow)
    backlog.put(Item("early"))  # before start: memory only, as without an overflow
    backlog.start()
    backlog.put(Item("new"))  # the overflow holds the earlier ones: this goes behind them
    assert [(s, i.name) for s, i in overflow.items] == [(7, "old1"), (8, "old2"), (9, "new")]
    assert await backlog.flush(5)
    assert server.taken == ["early", "old1", "old2", "new"]
    await backlog.close(1)


async def test_close_hands_what_is_left_in_memory_to_the_overflow_and_gives_back_what_it_could_not_keep():
    server = Server(up=False)
    overflow = ListOverflow()
    backlog = _backlog(server, limit=25, overflow=overflow)
    backlog.start()
    for name in ("a", "unkeepable", "c"):
        backlog.put(Item(name))
    left = await backlog.close(0.05)
    assert [(s, i.name) for s, i in overflow.kept] == [(0, "a"), (1, "unkeepable")]  # oldest first
    assert [i.name for i in left] == ["unkeepable"]  # the sink counts it as lost
    assert [i.name for _, i in overflow.items] == ["c"] and len(backlog) == 0 and overflow.closed


async def test_close_waits_for_the_send_in_flight_when_asked_and_its_outcome_counts():
    server = Server()
    server.hold = asyncio.Event()
    backlog = _backlog(server)
    backlog.start()
    backlog.put(Item("a"))
    await asyncio.wait_for(server.sending.wait(), 5)
    closing = asyncio.create_task(backlog.close(0.01, in_flight_s=5))
    await asyncio.sleep(0.05)
    assert not closing.done()  # the send of "a" is still going: close waits for its outcome
    server.hold.set()
    assert await closing == [] and server.taken == ["a"] and server.of("sent") == [("a", "ok a")]
