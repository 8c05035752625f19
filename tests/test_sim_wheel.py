"""The simulator's timer wheel: in virtual time the clock driver wakes what is due, all of
it at the same instant and in the order it slept; in real time it is trio's clock."""

from __future__ import annotations

import math

import trio
import trio.testing

from sim.simulator_runner import drive_virtual_clock
from sim.wheel import Wheel


async def _never_busy() -> bool:
    return False


async def test_due_sleepers_wake_at_their_instant_and_not_before(
    virtual_clock: trio.testing.MockClock,
) -> None:
    wheel = Wheel(virtual=True)
    woken: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await wheel.sleep(seconds)
        woken.append((name, trio.current_time()))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drive_virtual_clock, virtual_clock, _never_busy, wheel)
        async with trio.open_nursery() as sleepers:
            for name, seconds in (("a", 60), ("b", 60), ("c", 300), ("d", 60), ("e", 0)):
                sleepers.start_soon(sleeper, name, seconds)
        nursery.cancel_scope.cancel()
    at = {name: moment - start for name, moment in woken}
    assert at == {"a": 60, "b": 60, "c": 300, "d": 60, "e": 0}
    assert [name for name, _ in woken][-1] == "c"
    assert wheel.next_deadline() == math.inf


async def test_a_cancelled_sleeper_neither_wakes_nor_holds_the_clock(
    virtual_clock: trio.testing.MockClock,
) -> None:
    wheel = Wheel(virtual=True)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drive_virtual_clock, virtual_clock, _never_busy, wheel)
        with trio.CancelScope() as gone:
            gone.cancel()
            await wheel.sleep(10)
        assert wheel.next_deadline() == math.inf  # forgotten, not waited for
        await wheel.sleep(20)
        assert trio.current_time() - start == 20
        nursery.cancel_scope.cancel()


async def test_fire_due_wakes_everything_due_at_once(
    virtual_clock: trio.testing.MockClock,
) -> None:
    wheel = Wheel(virtual=True)
    order: list[str] = []

    async def sleeper(name: str, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await wheel.sleep(5)
        order.append(name)

    async with trio.open_nursery() as nursery:
        for name in ("first", "second", "third"):
            await nursery.start(sleeper, name)
        await trio.testing.wait_all_tasks_blocked()
        assert not wheel.fire_due()  # nothing is due yet
        virtual_clock.jump(5)
        assert wheel.fire_due()  # all three at once (trio runs them in its seeded order)
        assert not wheel.fire_due()
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(order) == ["first", "second", "third"]


async def test_in_real_time_the_wheel_is_trios_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = Wheel()
    start = trio.current_time()
    await wheel.sleep(42)
    await wheel.sleep_until(start + 50)
    assert trio.current_time() - start == 50
    assert wheel.next_deadline() == math.inf  # nothing went through the heap
