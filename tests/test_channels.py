"""Channels: the codec round-trips every record, and the embedded and Redis brokers
deliver, acknowledge and replay the same way."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
from channels_data import simulated_results
from helpers import REDIS_URL  # noqa: E402

from trapline import records
from trapline.alerts import Alert, LightcurvePoints
from trapline.channels import (
    CANDIDATES,
    DETECTIONS,
    IMAGES,
    MEASUREMENTS,
    RESULTS,
    ImageColumns,
    MemoryBroker,
    codec,
    open_broker,
    publish_result,
)
from trapline.errors import TraplineError
from trapline.records import BLIND


def assert_same(a, b, path="record"):
    """Equal field by field, arrays with the same dtype, shape and values (NaN = NaN)."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        if a.dtype.hasobject:
            assert a.tolist() == b.tolist(), path
        else:
            np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def result_with_candidates():
    return next(r for r, _ in simulated_results() if len(r.candidates))


def test_codec_round_trips_every_record_type():
    result = result_with_candidates()
    rejected = records.ImageRecord(
        "k", "/x.fits", float("nan"), float("nan"), float("nan"), -1, "", float("nan"), (0, 0),
        float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), float("nan"),
        float("nan"), float("nan"), float("nan"), False, "unreadable: bad header")
    samples = [result, result.image, result.measurements, result.sources, result.statistics,
               result.candidates, result.depth, records.ImageResult(rejected), rejected,
               ImageColumns("k", 60000.5, 1, 1.4e8, result.candidates),
               Alert("a-1", 7, 10.0, 20.0, 1e-4, 2e-4, 60000.5, 0, 1.5e8, "k", "new", "likely",
                     12.5, 0.3, 0.02, LightcurvePoints.empty())]
    covered = {type(s).__name__ for s in samples}
    assert {"ImageRecord", "Measurements", "SourceStates", "BandStatistics", "Candidates",
            "DepthUpdates", "ImageResult"} <= covered
    for sample in samples:
        data = codec.encode(sample)
        assert isinstance(data, bytes)
        assert_same(sample, codec.decode(data))
    assert codec.decode(codec.encode(result)).image.shape == result.image.shape  # a tuple


def test_codec_arrays_of_any_dtype_and_writable():
    for array in (np.arange(6, dtype=">i4").reshape(2, 3), np.array([True, False]),
                  np.array(["ab", "c"]), np.array([1.5, np.nan], dtype=np.float32),
                  np.array(["new", None, "x"], dtype=object), np.zeros((0, 3))):
        back = codec.decode(codec.encode(array))
        assert_same(array, back)
        assert back.flags.writeable


def test_codec_refuses_unregistered_types():
    @dataclasses.dataclass
    class Secret:
        x: int

    with pytest.raises(codec.CodecError):
        codec.encode(Secret(1))
    with pytest.raises(codec.CodecError):
        codec.decode(b"\xc7\x03\x63abc")  # an unknown extension type


# -- brokers ---------------------------------------------------------------------------

@pytest.fixture
def redis_broker(redis_prefix):
    from trapline.channels.redis import RedisBroker

    broker = RedisBroker(REDIS_URL, prefix=redis_prefix, claim_idle_s=0.2)
    yield broker
    broker.close()


@pytest.fixture(params=["memory", "redis"])
def broker(request):
    if request.param == "memory":
        return MemoryBroker(claim_idle_s=0.2)
    return request.getfixturevalue("redis_broker")


def test_every_group_sees_every_message_once(broker):
    ids = [broker.publish("t", {"n": i}) for i in range(5)]
    assert len(set(ids)) == 5 and broker.length("t") == 5
    broker.ensure_group("t", "a")
    broker.ensure_group("t", "b")
    for group in ("a", "b"):
        got = broker.read("t", group, "c1", count=10)
        assert [m.record["n"] for m in got] == list(range(5))
        for m in got:
            broker.ack(m)
        assert broker.read("t", group, "c1") == []
        assert broker.pending("t", group).count == 0


def test_consumers_of_a_group_share_the_work(broker):
    for i in range(6):
        broker.publish("t", i)
    one = broker.read("t", "g", "c1", count=3)
    two = broker.read("t", "g", "c2", count=10)
    for m in one + two:
        broker.ack(m)
    assert sorted(m.record for m in one + two) == list(range(6))
    assert {m.record for m in one}.isdisjoint({m.record for m in two})


def test_unacked_messages_replay_to_the_same_consumer(broker):
    for i in range(4):
        broker.publish("t", i, headers={"h": str(i)})
    first = broker.read("t", "g", "c1", count=2)  # then the consumer "dies"
    assert [m.record for m in first] == [0, 1] and first[0].deliveries == 1
    assert broker.pending("t", "g").consumers == {"c1": 2}
    again = broker.read("t", "g", "c1", count=10)  # restarted under the same name
    assert [m.record for m in again] == [0, 1]
    assert [m.deliveries for m in again] == [2, 2] and again[1].headers == {"h": "1"}
    for m in again:
        broker.ack(m)
    rest = broker.read("t", "g", "c1", count=10)
    assert [m.record for m in rest] == [2, 3]


def test_a_dead_consumers_messages_are_claimed_after_idle_time(broker):
    for i in range(3):
        broker.publish("t", i)
    broker.read("t", "g", "dead", count=2)
    (mine,) = broker.read("t", "g", "other", count=10)
    assert mine.record == 2
    broker.ack(mine)
    time.sleep(0.3)  # > claim_idle_s
    claimed = broker.read("t", "g", "other", count=10)
    assert sorted(m.record for m in claimed) == [0, 1]
    assert broker.pending("t", "g").consumers.get("dead", 0) == 0


def test_blocking_read_wakes_on_publish(broker):
    broker.read("t", "g", "c", count=1)  # create the group first
    timer = threading.Timer(0.1, lambda: broker.publish("t", "late"))
    timer.start()
    started = time.monotonic()
    got = broker.read("t", "g", "c", block_s=3.0)
    timer.join()
    assert [m.record for m in got] == ["late"] and time.monotonic() - started < 2.5


def test_memory_drops_what_every_group_acknowledged():
    broker = MemoryBroker()
    broker.ensure_group("t", "a")
    for i in range(4):
        broker.publish("t", i)
    got = broker.read("t", "a", "c", count=2)
    broker.ack(got[1])
    assert broker.length("t") == 4  # message 0 still pending
    broker.ack(got[0])
    assert broker.length("t") == 2
    assert [m.record for m in broker.read("t", "a", "c")] == [2, 3]


def test_logs_are_bounded():
    broker = MemoryBroker(maxlen=3)
    for i in range(10):
        broker.publish("t", i)
    assert broker.length("t") == 3
    assert [m.record for m in broker.read("t", "g", "c")] == [7, 8, 9]


def test_redis_bounds_streams_approximately(redis_broker):
    redis_broker.maxlen = 100
    for i in range(1000):
        redis_broker.publish("t", i)
    assert redis_broker.length("t") < 400


def test_publish_result_splits_an_image_over_the_channels(broker):
    result = result_with_candidates()
    ids = publish_result(broker, result, headers={"state": "{}"})
    assert set(ids) == {RESULTS, IMAGES, DETECTIONS, MEASUREMENTS, CANDIDATES}
    (whole,) = broker.read(RESULTS, "g", "c")
    assert_same(whole.record, result) and whole.headers == {"state": "{}"}
    (image,) = broker.read(IMAGES, "g", "c")
    assert_same(image.record, result.image)
    (det,) = broker.read(DETECTIONS, "g", "c")
    assert det.record.image_key == result.image.image_key
    assert (det.record.columns.kind == BLIND).all()
    assert len(det.record.columns) == int((result.measurements.kind == BLIND).sum())
    (cand,) = broker.read(CANDIDATES, "g", "c")
    assert_same(cand.record.columns, result.candidates)


def test_open_broker():
    assert isinstance(open_broker(None), MemoryBroker)
    assert isinstance(open_broker("memory://"), MemoryBroker)
    with pytest.raises(TraplineError, match="unknown broker URL 'kafka://x'"):
        open_broker("kafka://x")
