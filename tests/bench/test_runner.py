"""The benchmark's measuring window (app/bench/runner.py), with requests of known length."""

import asyncio
import random

import pytest

from app.bench.runner import _drive


async def test_a_request_longer_than_the_window_is_still_measured_and_the_window_grows() -> None:
    async def slow(worker: int, rng: random.Random) -> bool:
        await asyncio.sleep(0.3)
        return True

    measured = await _drive(2, 0.05, duration=0.1, one=slow)

    # Each worker's first request started in the warm-up and does not count; its second
    # started inside the window and ended after it: counted, and the window is that long.
    assert measured.requests == 2
    assert measured.seconds >= 0.25
    assert measured.rps == pytest.approx(measured.requests / measured.seconds)
    assert all(latency >= 300 for latency in measured.latencies_ms)


async def test_a_grown_window_counts_every_worker_alike() -> None:
    """One worker's requests take 0.3 s, the other's 0.05 s: the window grows for the slow
    one, and the quick one's requests that end inside it count too (it keeps the load on
    meanwhile), so its rate is not diluted by the longer window."""

    async def uneven(worker: int, rng: random.Random) -> bool:
        await asyncio.sleep(0.3 if worker == 0 else 0.05)
        return True

    measured = await _drive(2, 0.05, duration=0.1, one=uneven)

    assert measured.seconds >= 0.25
    quick = [latency for latency in measured.latencies_ms if latency < 250]
    # The quick worker ran all through the grown window: about seconds / 0.05 requests.
    assert len(quick) >= 0.6 * measured.seconds / 0.05


async def test_requests_shorter_than_the_window_keep_it_as_asked() -> None:
    async def quick(worker: int, rng: random.Random) -> bool:
        await asyncio.sleep(0.01)
        return worker == 0

    measured = await _drive(2, 0.05, duration=0.3, one=quick)

    assert measured.seconds == pytest.approx(0.3)
    assert measured.requests > 5
    # Worker 1's requests all fail: errors, not rates.
    assert measured.errors > 5
