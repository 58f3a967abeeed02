"""The flush's fast WAL path answers exactly what the full reader answers on a
clean log, and steps aside (None) on every kind of damage."""
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.batch import encode_batch
from lsm.jobs import FlushJob
from lsm.compactor.runner import _replay_wal
from lsm.compactor.wal_rows import clean_wal_rows
from lsm.keys import TYPE_DELETION, TYPE_VALUE
from lsm.coding import crc32c, mask_crc
from lsm.record import FULL, LogWriter, clean_fragment, clean_payloads, physical_end, skip_block_tail

keys = st.binary(min_size=0, max_size=200)
values = st.binary(min_size=0, max_size=300)
op = st.one_of(st.tuples(st.just(TYPE_VALUE), keys, values), st.tuples(st.just(TYPE_DELETION), keys, st.just(b"")))
batches = st.lists(st.lists(op, min_size=0, max_size=30), min_size=0, max_size=60)
FULL_READER = FlushJob(1, 1, None, paranoid=True)


def write_log(batch_list, first_sequence=1):
    writer = LogWriter()
    out = []
    sequence = first_sequence
    for ops in batch_list:
        out.append(writer.encode(encode_batch(sequence, ops)))
        sequence += len(ops)
    return b"".join(out)


@settings(max_examples=150, deadline=None)
@given(batches, st.booleans())
def test_clean_log_gives_the_full_readers_rows(batch_list, single_puts):
    if single_puts:  # the WAL of db.put/db.delete: one op per record
        batch_list = [[o] for ops in batch_list for o in ops]
    data = write_log(batch_list)
    fast = clean_wal_rows(data)
    rows, max_sequence, in_order, stopped = _replay_wal(FULL_READER, "wal", data)
    assert not stopped
    assert fast == (rows, max_sequence, in_order)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(op, min_size=1, max_size=3), min_size=1, max_size=300), st.data())
def test_damaged_or_torn_log_is_left_to_the_full_reader(batch_list, data):
    log = bytearray(write_log(batch_list))
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(log) - 1))
        log[at] ^= data.draw(st.integers(1, 255))  # a flipped byte: some checksum fails
    else:
        log = log[:data.draw(st.integers(0, len(log) - 1))]  # a torn tail
    fast = clean_wal_rows(bytes(log))
    if fast is not None:
        # Only possible when the cut fell on a record boundary: then it is a
        # clean, shorter log, and the answers agree.
        rows, max_sequence, in_order, stopped = _replay_wal(FULL_READER, "wal", bytes(log))
        assert not stopped and fast == (rows, max_sequence, in_order)


def test_zeroed_preallocation_is_left_to_the_full_reader():
    log = write_log([[(TYPE_VALUE, b"k", b"v")]]) + bytes(64)
    assert clean_wal_rows(log) is None


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=500), st.integers(0, 31))
def test_clean_reader_checks_the_checksum_as_lsm_coding_masks_it(payload, bit):
    """The clean reader masks the CRC as lsm.coding does: it accepts a fragment whose
    stored CRC is mask_crc's and refuses one whose stored CRC differs in
    any bit."""
    good = mask_crc(crc32c(payload, crc32c(bytes([FULL]))))
    for stored, accepted in ((good, True), (good ^ (1 << bit), False)):
        data = struct.pack("<IHB", stored, len(payload), FULL) + payload
        fragment = clean_fragment(data, memoryview(data), 0)
        assert (fragment == (FULL, 7, len(data))) if accepted else fragment is None
        assert (clean_payloads(data) is not None) == accepted


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 70000), min_size=1, max_size=8))
def test_physical_end_is_where_the_log_writer_ends_each_record(lengths):
    """The full reader finds a lost block by comparing each record's offset
    with where the one before it ended: that end is LogWriter's layout,
    block tails and fragments included."""
    writer = LogWriter()
    offset = 0
    for length in lengths:
        framed = writer.encode(bytes(length))
        start = skip_block_tail(offset)  # a record never starts in a block's tail
        assert physical_end(start, length) == offset + len(framed)
        offset += len(framed)
