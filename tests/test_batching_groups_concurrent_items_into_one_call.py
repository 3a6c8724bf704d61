"""The group-commit batcher: a lone item goes at once, items that arrive while a call is under
way share the next one, and each item gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from pgdurable._batching import Batcher


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, items: list[int]) -> list[int | BaseException]:
        self.calls.append(list(items))
        await self.gate.wait()
        return [ValueError(f"item {i} refused") if i < 0 else i * 10 for i in items]


async def test_a_lone_item_is_sent_at_once() -> None:
    rec = Recorder()
    batcher: Batcher[int, int] = Batcher(rec.send, max_items=8)
    assert await batcher.submit(1) == 10
    assert rec.calls == [[1]]


async def test_items_arriving_during_a_call_share_the_next_call_up_to_max_items() -> None:
    rec = Recorder()
    rec.gate.clear()
    batcher: Batcher[int, int] = Batcher(rec.send, max_items=3)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    assert rec.calls == [[0]]
    rec.gate.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [10, 20, 30, 40, 50]
    assert rec.calls == [[0], [1, 2, 3], [4, 5]]


async def test_items_submitted_in_the_same_turn_of_the_loop_share_one_call() -> None:
    rec = Recorder()
    batcher: Batcher[int, int] = Batcher(rec.send, max_items=3, max_in_flight=2)
    # Callers woken together (by one NOTIFY, say) submit before the first call runs.
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert rec.calls == [[0, 1, 2], [3, 4]]


async def test_an_item_error_fails_that_item_only_and_a_call_error_fails_its_batch() -> None:
    rec = Recorder()
    batcher: Batcher[int, int] = Batcher(rec.send, max_items=8, max_in_flight=2)
    results = await asyncio.gather(batcher.submit(-1), batcher.submit(2), return_exceptions=True)
    assert isinstance(results[0], ValueError) and str(results[0]) == "item -1 refused"
    assert results[1] == 20

    async def broken(items: list[int]) -> list[int]:
        raise RuntimeError("the database went away")

    failing: Batcher[int, int] = Batcher(broken, max_items=8)
    outcomes = await asyncio.gather(failing.submit(1), failing.submit(2), return_exceptions=True)
    assert [str(o) for o in outcomes] == ["the database went away"] * 2


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_items and max_in_flight must be >= 1"):
        Batcher(Recorder().send, max_items=0)
