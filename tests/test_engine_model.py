"""Model-based randomized test: lsm.DB against a dict with snapshots, through
flushes, compactions, manual compactions, and close/reopen."""
import shutil
import tempfile
from functools import cmp_to_key

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

import lsm
from lsm.compactor import columnar
from comparators import REVERSE_NAME, reverse_bytewise
from engine_helpers import model_range

KEYS = st.binary(min_size=0, max_size=3).map(lambda b: b"k" + b) | st.sampled_from([b"", b"\xff", b"k", b"k\x00"])
VALUES = st.one_of(st.binary(max_size=40), st.binary(min_size=500, max_size=4000))
OPTIONS = dict(create_if_missing=True, write_buffer_size=64 << 10, max_file_size=1 << 20,
               block_size=1024, compactors=0, level_size_base=96 << 10)


def engine_model(keys, values, bulk_sizes, compactors, chunk_bytes=None, compare=None, compare_name=None):
    """The model test's state machine over these key and value strategies,
    with flushes and compactions in `compactors` processes (0: inline);
    chunk_bytes: compactions read runs this many bytes at a time; compare:
    a custom comparator, named compare_name in the database."""
    bounds = st.none() | keys
    options = dict(OPTIONS, compactors=compactors)
    if compare is not None:
        options.update(comparator=compare, comparator_name=compare_name)
    order = (lambda item: item[0]) if compare is None else (lambda item, key=cmp_to_key(compare): key(item[0]))

    def in_order(model):
        return sorted(model.items(), key=order)

    class Model(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.chunk_bytes = columnar.CHUNK_BYTES
            columnar.CHUNK_BYTES = chunk_bytes or columnar.CHUNK_BYTES
            self.path = tempfile.mkdtemp(prefix="lsm-model-")
            self.db = lsm.DB(self.path, **options)
            self.model = {}
            self.snapshots = []  # (lsm snapshot, frozen model)

        def teardown(self):
            self.db.close()
            shutil.rmtree(self.path, ignore_errors=True)
            columnar.CHUNK_BYTES = self.chunk_bytes

        @rule(key=keys, value=values)
        def put(self, key, value):
            self.db.put(key, value)
            self.model[key] = value

        @rule(key=keys)
        def delete(self, key):
            self.db.delete(key)
            self.model.pop(key, None)

        @rule(ops=st.lists(st.tuples(st.booleans(), keys, values), max_size=30), transaction=st.booleans())
        def batch(self, ops, transaction):
            with self.db.write_batch(transaction=transaction) as wb:
                for is_put, key, value in ops:
                    if is_put:
                        wb.put(key, value)
                        self.model[key] = value
                    else:
                        wb.delete(key)
                        self.model.pop(key, None)

        @rule(n=st.integers(20, 200), size=bulk_sizes)
        def bulk(self, n, size):
            """Enough data to fill memtables and push compactions down levels."""
            with self.db.write_batch() as wb:
                for i in range(n):
                    key = b"k" + (i * 7919 % 251).to_bytes(1, "big") + bytes([i % 7])
                    value = bytes([i % 256]) * size
                    wb.put(key, value)
                    self.model[key] = value

        @rule(key=keys)
        def get(self, key):
            assert self.db.get(key) == self.model.get(key)

        @rule(reverse=st.booleans(), start=bounds, stop=bounds, include_start=st.booleans(),
              include_stop=st.booleans(), include_key=st.booleans(), include_value=st.booleans())
        def iterate(self, reverse, start, stop, include_start, include_stop, include_key, include_value):
            kw = dict(reverse=reverse, start=start, stop=stop, include_start=include_start,
                      include_stop=include_stop, include_key=include_key, include_value=include_value)
            assert list(self.db.iterator(**kw)) == model_range(in_order(self.model), compare=compare, **kw)

        @rule(prefix=st.binary(max_size=2), reverse=st.booleans())
        def iterate_prefix(self, prefix, reverse):
            got = list(self.db.iterator(prefix=prefix, reverse=reverse))
            assert got == model_range(in_order(self.model), prefix=prefix, reverse=reverse, compare=compare)

        @rule()
        def snapshot(self):
            if len(self.snapshots) < 4:
                self.snapshots.append((self.db.snapshot(), dict(self.model)))

        @precondition(lambda self: self.snapshots)
        @rule(data=st.data())
        def read_snapshot(self, data):
            snap, frozen = data.draw(st.sampled_from(self.snapshots))
            key = data.draw(keys)
            assert snap.get(key) == frozen.get(key)
            reverse = data.draw(st.booleans())
            assert list(snap.iterator(reverse=reverse)) == model_range(in_order(frozen), reverse=reverse, compare=compare)

        @precondition(lambda self: self.snapshots)
        @rule(data=st.data())
        def release_snapshot(self, data):
            i = data.draw(st.integers(0, len(self.snapshots) - 1))
            snap, _ = self.snapshots.pop(i)
            snap.release()

        @rule(start=bounds, stop=bounds)
        def compact_range(self, start, stop):
            self.db.compact_range(start=start, stop=stop)

        @rule()
        def reopen(self):
            for snap, _ in self.snapshots:
                snap.release()
            self.snapshots = []
            self.db.close()
            self.db = lsm.DB(self.path, **options)

    return Model


EngineModel = engine_model(KEYS, VALUES, st.integers(100, 3000), compactors=0)
EngineModel.TestCase.settings = settings(max_examples=25, stateful_step_count=40, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestEngineModel = EngineModel.TestCase


# The same model with flushes and compactions in two compactor processes.
PoolEngineModel = engine_model(KEYS, VALUES, st.integers(100, 3000), compactors=2)
PoolEngineModel.TestCase.settings = settings(max_examples=6, stateful_step_count=30, deadline=None,
                                             suppress_health_check=[HealthCheck.too_slow])
TestPoolEngineModel = PoolEngineModel.TestCase


# Keys and values of one size each, and bulk loads of one value size, with
# deletions and a second value size among them; runs are read a block or so
# at a time, so a compaction's windows are many and small.
FixedSizeEngineModel = engine_model(
    st.binary(min_size=2, max_size=2).map(lambda b: b"k" + b),
    st.sampled_from([bytes(30), b"v" * 30, b"\xff" * 30]) | st.binary(min_size=30, max_size=30),
    st.sampled_from([30, 30, 30, 700]),
    compactors=0,
    chunk_bytes=1024,
)
FixedSizeEngineModel.TestCase.settings = settings(max_examples=25, stateful_step_count=40, deadline=None,
                                                  suppress_health_check=[HealthCheck.too_slow])
TestFixedSizeEngineModel = FixedSizeEngineModel.TestCase


# Keys in reverse bytewise order, a custom comparator: inline, and with the
# comparator imported by name in two compactor processes.
ReverseEngineModel = engine_model(KEYS, VALUES, st.integers(100, 3000), compactors=0,
                                  compare=reverse_bytewise, compare_name=REVERSE_NAME)
ReverseEngineModel.TestCase.settings = settings(max_examples=12, stateful_step_count=40, deadline=None,
                                                suppress_health_check=[HealthCheck.too_slow])
TestReverseEngineModel = ReverseEngineModel.TestCase

PoolReverseEngineModel = engine_model(KEYS, VALUES, st.integers(100, 3000), compactors=2,
                                      compare=reverse_bytewise, compare_name=REVERSE_NAME)
PoolReverseEngineModel.TestCase.settings = settings(max_examples=4, stateful_step_count=30, deadline=None,
                                                    suppress_health_check=[HealthCheck.too_slow])
TestPoolReverseEngineModel = PoolReverseEngineModel.TestCase
