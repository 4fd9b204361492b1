"""`stream run` with window features: the model inputs are the training set's, exactly.

A day of a simulated world goes through the real processor on the embedded log, in
micro-batches (several payments of one customer in a batch), against a live online store
materialized up to the day's start and never fed by the test: the logged model inputs
must equal `FeatureStore.get_training_set` on the same transactions for every row. A
processor stopped without committing (its decided batches come back) and rebuilt on
restart must give the re-delivered payments the same inputs again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.transaction import Transaction
from mlsd.features.aggregations import Aggregation, Derived
from mlsd.features.definitions import Entity, FeatureView
from mlsd.features.handbook import CUSTOMER_VIEW, TERMINAL_VIEW
from mlsd.features.vectors import to_us
from mlsd.lab.replay_world import World, day_start, make_world
from mlsd.predlog import make_prediction_log
from mlsd.registry import Registry
from mlsd.serving.testing import FEATURES, register_tiny_model, tiny_model_artifacts
from mlsd.settings import Settings
from mlsd.streaming import open_event_log
from mlsd.streaming.batch import batch_features, to_transactions
from mlsd.streaming.codec import transaction_record
from mlsd.streaming.processor import StreamConfig
from mlsd.streaming.wiring import open_processor

DAY = 9
BATCH = 16


@dataclass
class Setup:
    world: World
    settings: Settings
    day: pd.DataFrame
    expected: np.ndarray  # get_training_set's model inputs of `day`, filled as training fills


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("window")
    world = make_world(work, SimulatorConfig.scaled(150, 300, n_days=DAY + 1, seed=5))
    settings = Settings(home=work / "home", prediction_log_flush_seconds=0.02)
    registry = Registry.open(settings)
    register_tiny_model(registry, tiny_model_artifacts(1), world.store.view_versions())
    registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
    registry.close()
    tx = world.transactions
    start = pd.Timestamp(world.day(DAY), tz="UTC")
    end = start + pd.Timedelta(days=1)
    in_day = (tx[schema.TX_DATETIME] >= start) & (tx[schema.TX_DATETIME] < end)
    day = tx[in_day].sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID]).reset_index(drop=True)
    expected = batch_features(world.store, day, tuple(FEATURES))
    yield Setup(world, settings, day, expected)
    world.close()


def _live_store(setup: Setup) -> datetime:
    """The online store as a deployment has it: materialized up to the day's start; now."""
    setup.world.store.online.clear()
    setup.world.store.materialize(end=day_start(setup.world.day(DAY)))
    return datetime.now(UTC)


def _publish(setup: Setup, topic: str, rows: pd.DataFrame) -> None:
    events = open_event_log(setup.settings)
    try:
        events.create_topic(topic, 2)
        events.publish(topic, [transaction_record(tx) for tx in to_transactions(rows)])
    finally:
        events.close()


def _config(group: str, batch: int = BATCH, commit_batches: int = 1000) -> StreamConfig:
    return StreamConfig(input_topic=f"tx-{group}", output_topic=f"decisions-{group}",
                        dead_letter_topic=f"dead-{group}", group=group, batch=batch,
                        partitions=2, commit_batches=commit_batches)  # fmt: skip


def _logged(setup: Setup, since: datetime) -> pd.DataFrame:
    """Every stream record of the day's payments logged since `since` (all deliveries)."""
    log = make_prediction_log(setup.settings)
    try:
        frame = log.read(since, None)
    finally:
        log.close()
    ids = {f"tx-{t}" for t in setup.day[schema.TRANSACTION_ID]}
    return frame[(frame["endpoint"] == "stream") & frame["request_id"].isin(ids)]


def _rows(frame: pd.DataFrame, ids: pd.Series) -> np.ndarray:
    last = frame.drop_duplicates("transaction_id", keep="last").set_index("transaction_id")
    return np.array([[row[f] for f in FEATURES] for row in last.loc[ids, "features"]], np.float32)


def _run(
    setup: Setup,
    group: str,
    *,
    stop_after: int | None = None,
    commit_batches: int = 1000,
    expect: int | None = None,
) -> int:
    """Run a processor on the group's topic until every payment of the day came (or
    `stop_after` batches, then stop uncommitted); the batches it processed."""
    config = _config(group, commit_batches=commit_batches)
    processor, close = open_processor(setup.settings, config, follow_alias=False)
    steps = polls = got = 0
    try:
        want = len(setup.day) if expect is None else expect
        while got < want and (stop_after is None or steps < stop_after):
            polls += 1
            assert polls < 200, "the events never came"
            n = processor.step()
            got += n
            steps += n > 0
        if stop_after is None:
            processor.commit()
    finally:
        close()  # leaves the group: what is not committed goes to the next member
    return steps


def test_the_streams_model_inputs_are_the_training_sets(setup: Setup) -> None:
    since = _live_store(setup)
    _publish(setup, "tx-parity", setup.day)
    assert _run(setup, "parity") > 2, "several micro-batches"
    frame = _logged(setup, since)
    served = _rows(frame, setup.day[schema.TRANSACTION_ID])
    assert served.shape == setup.expected.shape
    close = np.isclose(served, setup.expected, rtol=1e-6, atol=1e-6)
    assert close.all(), f"{(~close.all(axis=1)).sum()} of {len(served)} rows differ"
    # the customer windows count each payment (the store alone is one payment behind)
    n1 = FEATURES.index("CUSTOMER_ID_NB_TX_1DAY_WINDOW")
    assert (served[:, n1] >= 1).all()
    assert not frame["degraded"].any()
    # several payments of one customer in one batch: each saw the ones before it
    counts = setup.day.groupby(schema.CUSTOMER_ID).size()
    assert counts.max() >= 3


def _last_rows(setup: Setup, names: list[str]) -> np.ndarray:
    """The online store's values of `names` for each customer's last payment of the day."""
    last = setup.day.groupby(schema.CUSTOMER_ID).tail(1)
    requests = [
        {schema.CUSTOMER_ID: int(r.CUSTOMER_ID), schema.TERMINAL_ID: int(r.TERMINAL_ID),
         schema.TX_DATETIME: r.TX_DATETIME.to_pydatetime()}
        for r in last.itertuples(index=False)
    ]  # fmt: skip
    return np.asarray(setup.world.store.online_vectors(requests, names).values)


def _last_expected(setup: Setup, names: list[str]) -> np.ndarray:
    """`get_training_set`'s values of `names` for each customer's last payment of the day."""
    last = setup.day.groupby(schema.CUSTOMER_ID).tail(1)
    return setup.expected[last.index][:, [FEATURES.index(f) for f in names]]


def test_the_online_store_holds_the_fresh_rows(setup: Setup) -> None:
    _live_store(setup)
    _publish(setup, "tx-store", setup.day)
    _run(setup, "store")
    names = list(CUSTOMER_VIEW.features)
    got, want = _last_rows(setup, names), _last_expected(setup, names)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6), "serving reads what the stream computed"
    assert len(TERMINAL_VIEW.features) == 6


def test_the_processor_writes_its_fresh_rows_when_it_commits_them(setup: Setup) -> None:
    """One write per commit: a processor stopped before its commit wrote none of its rows
    (its batches come back), and the commit writes every batch's, a key's newest winning."""
    _live_store(setup)
    names = list(CUSTOMER_VIEW.features)
    want = _last_expected(setup, names)
    before = _last_rows(setup, names)
    assert not np.allclose(before, want, rtol=1e-6, atol=1e-6), "the day changes them"
    _publish(setup, "tx-deferred", setup.day)
    assert _run(setup, "deferred", stop_after=3) == 3
    assert np.array_equal(_last_rows(setup, names), before), "written before the commit"
    _run(setup, "deferred")  # the next member gets the three batches again, and commits
    assert np.allclose(_last_rows(setup, names), want, rtol=1e-6, atol=1e-6)


def test_deferring_the_write_changes_when_rows_are_written_never_what_a_payment_reads(
    setup: Setup,
) -> None:
    """A delayed view (the terminal risk) past its history's end is read from the online
    store: that read sees the rows of the batches before, deferred or not."""
    from mlsd.streaming.window_features import WindowFeatures

    txs = to_transactions(setup.day)
    batches = [txs[i : i + len(txs) // 4 + 1] for i in range(0, len(txs), len(txs) // 4 + 1)]
    seen: dict[bool, tuple[list[np.ndarray], np.ndarray, int]] = {}
    for defer in (False, True):
        _live_store(setup)
        state = WindowFeatures(setup.world.store, FEATURES)
        events, log = open_event_log(setup.settings), make_prediction_log(setup.settings)
        try:
            state.rebuild(events, "no-such-topic", log)
        finally:
            events.close()
            log.close()
        terminal = next(s for s in state.served if s.view.name == TERMINAL_VIEW.name)
        assert terminal.watermark is not None
        assert not terminal.live
        # the history ends so that the day's second half is past it
        terminal.watermark = to_us(txs[len(txs) // 2].timestamp) - terminal.min_delay_us
        rows = []
        for batch in batches:
            state.prepare(batch, defer_write=defer)
            rows.append(state.rows.copy())
        state.write_deferred()
        assert state.write_deferred() == 0, "nothing kept twice"
        seen[defer] = (rows, _last_rows(setup, list(TERMINAL_VIEW.features)), state.fallback_rows)
    (now, stored_now, fallback), (later, stored_later, _) = seen[False], seen[True]
    assert 0 < fallback < len(txs)
    assert all(np.array_equal(a, b) for a, b in zip(now, later, strict=True))
    assert np.array_equal(stored_now, stored_later, equal_nan=True)


def test_a_restart_rebuilds_the_state_and_redelivered_payments_get_the_same_inputs(
    setup: Setup,
) -> None:
    since = _live_store(setup)
    _publish(setup, "tx-restart", setup.day)
    # 4 batches committed (never delivered again: the rebuild must bring them back), the
    # fifth decided and logged, not committed (delivered again)
    assert _run(setup, "restart", stop_after=5, commit_batches=2) == 5
    _run(
        setup, "restart", expect=len(setup.day) - 4 * BATCH
    )  # rebuilds from the history and the decided events, re-scores
    frame = _logged(setup, since)
    counts = frame.groupby("transaction_id").size()
    assert 0 < (counts > 1).sum() <= 2 * BATCH, "the uncommitted batch came back, not the rest"
    for _, rows in frame[frame["transaction_id"].isin(counts[counts > 1].index)].groupby(
        "transaction_id"
    ):
        vectors = [[r[f] for f in FEATURES] for r in rows["features"]]
        assert all(v == vectors[0] for v in vectors), "a redelivery meets the same state"
    served = _rows(frame, setup.day[schema.TRANSACTION_ID])
    assert np.isclose(served, setup.expected, rtol=1e-6, atol=1e-6).all()


def test_off_the_store_is_one_payment_behind(setup: Setup) -> None:
    """Without the option (and no feed of the store), the inputs are not the training set's."""
    since = _live_store(setup)
    _publish(setup, "tx-off", setup.day)
    processor, close = open_processor(
        setup.settings, _config("off"), follow_alias=False, window_features=False
    )
    try:
        assert processor.window_features is None
        while processor.step():
            pass
        processor.commit()
    finally:
        close()
    served = _rows(_logged(setup, since), setup.day[schema.TRANSACTION_ID])
    differs = ~np.isclose(served, setup.expected, rtol=1e-6, atol=1e-6).all(axis=1)
    assert differs.mean() > 0.5


def test_one_batch_in_any_order_each_payment_sees_the_ones_before_it(setup: Setup) -> None:
    """The whole day as ONE shuffled micro-batch: updated in event-time order all the same."""
    from mlsd.streaming.window_features import WindowFeatures

    _live_store(setup)
    state = WindowFeatures(setup.world.store, FEATURES)
    assert [s.view.name for s in state.served] == [CUSTOMER_VIEW.name, TERMINAL_VIEW.name]
    events, log = open_event_log(setup.settings), make_prediction_log(setup.settings)
    try:
        report = state.rebuild(events, "no-such-topic", log)
    finally:
        events.close()
        log.close()
    assert report.history[CUSTOMER_VIEW.name] > 0
    assert report.decided == 0
    shuffled = setup.day.sample(frac=1.0, random_state=1)
    txs = to_transactions(shuffled)
    assert state.prepare(txs) == 2 * len(txs)  # a customer row and a terminal row each
    got, statuses = state.values([(t.customer_id, t.terminal_id, to_us(t.timestamp)) for t in txs])
    columns = [FEATURES.index(f) for f in state.features]
    want = setup.expected[shuffled.index][:, columns]
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6)
    assert all(set(st.values()) == {"present"} for st in statuses)
    assert state.fallback_rows == 0


class _Growing:
    """An event log whose topic grows while it is read: each replay call publishes one more
    payment first (payments still arriving while a processor starts)."""

    def __init__(self, setup: Setup, inner: Any, topic: str) -> None:
        self.setup, self.inner, self.topic, self.replays = setup, inner, topic, 0

    def partitions(self, topic: str) -> int:
        return int(self.inner.partitions(topic))

    def replay(self, topic: str, partition: int, **kwargs: Any) -> list[Any]:
        self.replays += 1
        if self.replays > 200:
            raise AssertionError("the rebuild chases the topic's end")
        day = self.setup.day
        _publish(self.setup, self.topic, day.iloc[[self.replays % len(day)]])
        return list(self.inner.replay(topic, partition, **kwargs))


def test_the_rebuild_stops_at_the_end_it_reached_while_payments_keep_coming(
    setup: Setup,
) -> None:
    """A replay that ends short reached the partition's end: the rebuild stops there (every
    decided payment is behind it) instead of reading what is published meanwhile."""
    from mlsd.streaming.window_features import WindowFeatures

    _live_store(setup)
    state = WindowFeatures(setup.world.store, FEATURES)
    events, log = open_event_log(setup.settings), make_prediction_log(setup.settings)
    topic = f"growing-{uuid.uuid4().hex[:6]}"
    try:
        events.create_topic(topic, 2)
        _publish(setup, topic, setup.day.iloc[:10])
        growing = _Growing(setup, events, topic)
        report = state.rebuild(growing, topic, log)  # type: ignore[arg-type]
    finally:
        events.close()
        log.close()
    assert growing.replays == 2  # one short page per partition
    assert report.replayed >= 10


def test_a_redelivered_payment_does_not_meet_the_later_decided_ones(setup: Setup) -> None:
    """A at +0.3 d (committed), B at +30.2 d and C at +30.5 d (decided, not committed) of a
    new card: C expires A (30 days before it) but B's 30-day window holds A. After a
    restart B must meet the state it met first (A and B), not one where C expired A."""
    since = _live_store(setup)
    start = pd.Timestamp(day_start(setup.world.day(DAY)))
    card, topic = 10**9, "tx-held"

    def payment(ident: int, days: float) -> Transaction:
        return Transaction(
            ident,
            card,
            1,
            10.0,
            (start + pd.Timedelta(seconds=round(days * 86_400))).to_pydatetime(),
        )

    events = open_event_log(setup.settings)
    events.create_topic(topic, 1)
    try:
        events.publish(topic, [transaction_record(payment(10**9 + 1, 0.3))])
        config = replace(_config("held", batch=1), partitions=1)
        first, close = open_processor(setup.settings, replace(config, commit_batches=1),
                                      follow_alias=False)  # fmt: skip
        try:
            assert first.step() == 1
            first.commit()
        finally:
            close()
        events.publish(topic, [transaction_record(payment(10**9 + i, d))
                               for i, d in ((2, 30.2), (3, 30.5))])  # fmt: skip
        for round_ in range(2):  # decided, never committed; then again after a restart
            again, close = open_processor(setup.settings, config, follow_alias=False)
            try:
                assert again.window_features is not None
                if round_:
                    assert again.window_features.rebuilt.decided >= 3
                got = 0
                for _ in range(100):
                    got += again.step()
                    if got == 2:
                        break
                assert got == 2
            finally:
                close()
    finally:
        events.close()
    frame = _logged_all(setup, since)
    mine = frame[frame["customer_id"] == card]
    count = FEATURES.index("CUSTOMER_ID_NB_TX_30DAY_WINDOW")
    b = [r[FEATURES[count]] for r in mine[mine["transaction_id"] == 10**9 + 2]["features"]]
    assert b == [2.0, 2.0], "B counts A and itself, the second time too"


def _logged_all(setup: Setup, since: datetime) -> pd.DataFrame:
    log = make_prediction_log(setup.settings)
    try:
        return log.read(since, None)
    finally:
        log.close()


def test_a_history_that_is_gone_is_a_clear_error_naming_the_way_out(setup: Setup) -> None:
    from mlsd.errors import NotFoundError

    _live_store(setup)
    moved = setup.world.dataset_dir.with_name("moved")
    setup.world.dataset_dir.rename(moved)
    try:
        with pytest.raises(NotFoundError, match="no-window-features") as info:
            open_processor(setup.settings, _config("gone"), follow_alias=False)
        assert info.value.field == "dataset"
        _, close = open_processor(
            setup.settings, _config("gone"), follow_alias=False, window_features=False
        )
        close()
    finally:
        moved.rename(setup.world.dataset_dir)


def _every_function_view() -> FeatureView:
    """A window view with every aggregation function, a delay and a derived z-score of the
    current event's amount (what the handbook's views do not exercise)."""
    hours = timedelta(hours=1)
    aggs = (
        Aggregation("N", "count", None, 2 * hours),
        Aggregation("S", "sum", schema.TX_AMOUNT, 3 * hours),
        Aggregation("M", "mean", schema.TX_AMOUNT, 5 * hours),
        Aggregation("SD", "std", schema.TX_AMOUNT, 5 * hours),
        Aggregation("LO", "min", schema.TX_AMOUNT, 4 * hours, hours),
        Aggregation("HI", "max", schema.TX_AMOUNT, 4 * hours),
        Aggregation("L", "last", schema.TX_AMOUNT, 6 * hours),
        Aggregation("D", "count_distinct", schema.TERMINAL_ID, 6 * hours),
    )
    derived = (Derived("Z", "zscore", (schema.TX_AMOUNT, "M", "SD"), default=0.0),)
    features = ("N", "S", "M", "SD", "LO", "HI", "L", "D", "Z")
    return FeatureView("every", Entity("customer", schema.CUSTOMER_ID), "window", features,
                       timedelta(days=1), aggregations=aggs, derived=derived)  # fmt: skip


@pytest.mark.parametrize("view", [CUSTOMER_VIEW, TERMINAL_VIEW, _every_function_view()],
                         ids=lambda v: v.name)  # fmt: skip
def test_the_fast_state_is_the_reference_bit_for_bit(view: FeatureView) -> None:
    """Random events (ties, out of order, late ones) into both: every get equal, NaN too."""
    from mlsd.features.incremental import WindowState
    from mlsd.streaming.window_features import FastWindowState

    rng = np.random.default_rng(3)
    ref, fast = WindowState(view), FastWindowState(view)
    hour = 3_600_000_000
    span_h = max(ref.span // hour, 6)
    t = 0
    for i in range(3000):
        # on a 10-minute grid, so events often sit exactly on a window's edge; ties too
        t += 600_000_000 * int(rng.integers(0, 12)) if rng.random() > 0.1 else 0
        when = t - int(rng.integers(0, span_h * 2 * hour)) if rng.random() < 0.05 else t  # late
        event = {
            schema.TRANSACTION_ID: i, schema.CUSTOMER_ID: int(rng.integers(0, 20)),
            schema.TERMINAL_ID: int(rng.integers(0, 20)), schema.TX_DATETIME: when,
            schema.TX_AMOUNT: float(np.round(rng.gamma(2.0, 30.0), 2)),
            schema.TX_FRAUD: int(rng.random() < 0.1),
        }  # fmt: skip
        ref.update(event)
        fast.update(event)
        key = int(event[ref.key])
        at = max(when, t) if rng.random() < 0.3 else when
        if at < when:
            continue
        a, b = ref.get(key, at), fast.get(key, at)
        assert list(a) == list(b)
        assert np.array_equal(np.array(list(a.values())), np.array(list(b.values())),
                              equal_nan=True), (i, a, b)  # fmt: skip
    assert fast.late_dropped == ref.late_dropped > 0
    assert all(fast.held(k) == ref.held(k) for k in range(20))


@pytest.mark.parametrize("view", [CUSTOMER_VIEW, TERMINAL_VIEW, _every_function_view()],
                         ids=lambda v: v.name)  # fmt: skip
def test_a_bulk_loaded_history_is_the_reference_fed_event_by_event(view: FeatureView) -> None:
    from mlsd.features.incremental import WindowState
    from mlsd.streaming.window_features import FastWindowState

    rng = np.random.default_rng(4)
    n = 4000
    times = np.sort(rng.integers(0, 40 * 86_400_000_000, n) // 600_000_000 * 600_000_000)
    keys = rng.integers(0, 30, n)
    amounts = np.round(rng.gamma(2.0, 30.0, n), 2)
    frauds = (rng.random(n) < 0.1).astype(np.int64)
    terminals = rng.integers(0, 30, n)
    ref, fast = WindowState(view), FastWindowState(view)
    columns = {schema.TX_AMOUNT: amounts, schema.TX_FRAUD: frauds, schema.TERMINAL_ID: terminals}
    for i in range(n):
        ref.update({ref.key: int(keys[i]), ref.time: int(times[i]),
                    **{c: columns[c][i].item() for c in ref.columns}})  # fmt: skip
    rows = np.column_stack([columns[c].astype(np.float64) for c in fast.columns])
    fast.load(keys, times, rows)
    at = int(times[-1]) + 3_600_000_000
    for key in range(30):
        assert fast.held(key) == ref.held(key)
        a, b = ref.get(key, at), fast.get(key, at)
        assert np.array_equal(np.array(list(a.values())), np.array(list(b.values())),
                              equal_nan=True), (key, a, b)  # fmt: skip
