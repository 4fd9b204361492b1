"""The micro-batcher groups concurrent requests into one model call and fans results back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mlsd.errors import ValidationError
from mlsd.inference.batcher import BatchConfig, MicroBatcher


def _sum_rows(values: np.ndarray) -> tuple[np.ndarray, str]:
    return values.sum(axis=1), f"batch of {len(values)}"


def _run(config: BatchConfig, parts: list[np.ndarray]) -> tuple[list[np.ndarray], list[str], int]:
    sizes: list[int] = []
    batcher: MicroBatcher[str] = MicroBatcher(_sum_rows, config, on_batch=sizes.append)

    async def main() -> list[tuple[np.ndarray, str]]:
        return await asyncio.gather(*(batcher.submit(p) for p in parts))

    results = asyncio.run(main())
    return [r[0] for r in results], [r[1] for r in results], len(sizes)


def _parts(n: int) -> list[np.ndarray]:
    return [np.full((1 + i % 3, 4), float(i), dtype=np.float32) for i in range(n)]


@pytest.mark.parametrize("delay", [0.0, 2.0])
def test_concurrent_requests_share_one_call_and_get_their_own_rows(delay: float) -> None:
    parts = _parts(10)
    scores, tags, calls = _run(BatchConfig(max_batch_size=64, max_delay_ms=delay), parts)
    assert calls == 1
    assert set(tags) == {f"batch of {sum(len(p) for p in parts)}"}
    for part, got in zip(parts, scores, strict=True):
        np.testing.assert_array_equal(got, part.sum(axis=1))


def test_max_batch_size_flushes_early() -> None:
    parts = [np.ones((1, 2), dtype=np.float32)] * 10
    _, tags, calls = _run(BatchConfig(max_batch_size=4, max_delay_ms=1000.0), parts)
    assert calls == 3
    assert tags.count("batch of 4") == 8
    assert tags.count("batch of 2") == 2


def test_disabled_batcher_calls_the_model_per_request() -> None:
    _, _tags, calls = _run(BatchConfig(max_batch_size=64, max_delay_ms=-1), _parts(5))
    assert calls == 5


def test_a_failing_model_fails_every_waiting_request() -> None:
    def boom(values: np.ndarray) -> tuple[np.ndarray, str]:
        raise ValidationError("bad batch", field="inputs")

    batcher: MicroBatcher[str] = MicroBatcher(boom, BatchConfig(8, 1.0))

    async def main() -> list[object]:
        return await asyncio.gather(
            *(batcher.submit(np.ones((1, 2), dtype=np.float32)) for _ in range(3)),
            return_exceptions=True,
        )

    assert all(isinstance(r, ValidationError) for r in asyncio.run(main()))


@pytest.mark.parametrize(("size", "delay"), [(0, 1.0), (100_000, 1.0), (8, 20_000.0)])
def test_bad_config_is_refused(size: int, delay: float) -> None:
    with pytest.raises(ValidationError):
        BatchConfig(size, delay)


def _turns_until_done(config: BatchConfig, arrivals: list[int]) -> tuple[int | None, list[int]]:
    """Requests arriving over successive loop turns (`arrivals[t]` in turn t): the loop turn
    at which all are answered (None if not within 50 turns) and the batch sizes."""
    sizes: list[int] = []
    batcher: MicroBatcher[str] = MicroBatcher(_sum_rows, config, on_batch=sizes.append)

    async def main() -> int | None:
        futures = []
        for turn in range(50):
            if turn < len(arrivals):
                for _ in range(arrivals[turn]):
                    futures.append(asyncio.ensure_future(batcher.submit(np.ones((1, 4)))))
            await asyncio.sleep(0)
            if futures and all(f.done() for f in futures) and turn >= len(arrivals) - 1:
                return turn
        for f in futures:
            f.cancel()
        return None

    return asyncio.run(main()), sizes


def test_adaptive_batching_flushes_at_the_first_quiet_turn_not_the_deadline() -> None:
    """A 10 s maximum delay, requests over three turns: one call, a few turns later."""
    turn, sizes = _turns_until_done(BatchConfig(256, 10_000.0), [3, 2, 1])
    assert turn is not None
    assert turn <= 6
    assert sizes == [6]


def test_a_fixed_delay_waits_for_its_deadline() -> None:
    turn, sizes = _turns_until_done(BatchConfig(256, 10_000.0, adaptive=False), [3, 2, 1])
    assert turn is None, "a 10 s deadline is not reached within 50 loop turns"
    assert sizes == []
