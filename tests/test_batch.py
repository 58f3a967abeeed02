"""WriteBatch codec (lsm.batch) and the coding primitives it is built from (lsm.coding)."""
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lsm.batch as batch_module
from lsm.batch import (HEADER_SIZE, decode_batch, encode_batch, encode_delete, encode_header,
                       encode_put)
from lsm.coding import (decode_fixed32, decode_fixed64, decode_length_prefixed, decode_varint32,
                        decode_varint64, encode_fixed32, encode_fixed64, encode_length_prefixed,
                        encode_varint, mask_crc, masked_crc32c, unmask_crc, crc32c)
from lsm.errors import DecodeError
from lsm.keys import TYPE_DELETION, TYPE_VALUE

# Coding primitives -----------------------------------------------------------------------------

@given(st.integers(0, 2**64 - 1), st.binary(max_size=4))
def test_varint64_round_trip_shortest_form(value, prefix):
    enc = encode_varint(value)
    assert len(enc) == max(1, (value.bit_length() + 6) // 7)
    assert enc[-1] < 0x80 and all(b >= 0x80 for b in enc[:-1])
    assert decode_varint64(prefix + enc + b"tail", len(prefix)) == (value, len(prefix) + len(enc))


@given(st.integers(0, 2**32 - 1))
def test_varint32_round_trip(value):
    enc = encode_varint(value)
    assert len(enc) <= 5
    assert decode_varint32(enc) == (value, len(enc))


@given(st.integers(0, 2**64 - 1))
def test_truncated_varint_is_rejected(value):
    enc = encode_varint(value)
    for cut in range(len(enc)):
        with pytest.raises(DecodeError):
            decode_varint64(enc[:cut])


def test_overlong_varints_are_rejected():
    with pytest.raises(DecodeError):
        decode_varint32(b"\x80" * 5 + b"\x00")
    with pytest.raises(DecodeError):
        decode_varint32(encode_varint(2**32))
    with pytest.raises(DecodeError):
        decode_varint64(b"\xff" * 10 + b"\x01")


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))
def test_fixed_round_trip_little_endian(v32, v64):
    assert encode_fixed32(v32) == v32.to_bytes(4, "little")
    assert encode_fixed64(v64) == v64.to_bytes(8, "little")
    assert decode_fixed32(b"x" + encode_fixed32(v32), 1) == v32
    assert decode_fixed64(b"xy" + encode_fixed64(v64), 2) == v64
    with pytest.raises(DecodeError):
        decode_fixed64(encode_fixed64(v64)[:7])


@given(st.binary(max_size=300))
def test_length_prefixed_round_trip(data):
    enc = encode_length_prefixed(data)
    assert decode_length_prefixed(enc + b"more") == (data, len(enc))
    with pytest.raises(DecodeError):
        decode_length_prefixed(enc[:-1])


@given(st.integers(0, 2**32 - 1))
def test_crc_mask_round_trip(crc):
    assert unmask_crc(mask_crc(crc)) == crc


def test_crc32c_vectors_from_spec():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    assert crc32c(b"foo") == 0xCFC4AE1D
    assert masked_crc32c(b"foo") == 0xFEBE8A61


# WriteBatch ------------------------------------------------------------------------------------

def test_put_example_bytes_from_spec():
    data = encode_batch(1, [(TYPE_VALUE, b"apple", b"red")])
    assert data == bytes.fromhex("0100000000000000 01000000") + b"\x01\x05apple\x03red"
    assert len(data) == 23
    assert decode_batch(data) == (1, [(TYPE_VALUE, b"apple", b"red")])


def test_put_and_delete_example_bytes_from_spec():
    ops = [(TYPE_VALUE, b"cherry", b"dark red"), (TYPE_DELETION, b"apple", None)]
    data = encode_batch(3, ops)
    assert data == (bytes.fromhex("0300000000000000 02000000")
                    + b"\x01\x06cherry\x08dark red" + b"\x00\x05apple")
    assert data == encode_header(3, 2) + encode_put(b"cherry", b"dark red") + encode_delete(b"apple")
    assert decode_batch(data) == (3, [(TYPE_VALUE, b"cherry", b"dark red"),
                                      (TYPE_DELETION, b"apple", b"")])


op_st = st.one_of(
    st.tuples(st.just(TYPE_VALUE), st.binary(max_size=200), st.binary(max_size=300)),
    st.tuples(st.just(TYPE_DELETION), st.binary(max_size=200), st.just(b"")),
)


@given(st.integers(0, 2**56 - 1), st.lists(op_st, max_size=30))
def test_batch_round_trip_with_empty_and_long_keys_and_values(sequence, ops):
    data = encode_batch(sequence, ops)
    assert decode_batch(data) == (sequence, ops)
    assert decode_batch(memoryview(data)) == (sequence, ops)


def test_empty_batch_round_trip():
    assert encode_batch(7, []) == encode_header(7, 0)
    assert decode_batch(encode_header(7, 0)) == (7, [])


def test_value_longer_than_a_one_byte_varint():
    ops = [(TYPE_VALUE, b"k" * 200, b"v" * 70000)]
    assert decode_batch(encode_batch(5, ops)) == (5, ops)


def test_batch_shorter_than_header_is_rejected():
    for n in range(HEADER_SIZE):
        with pytest.raises(DecodeError, match="too small"):
            decode_batch(encode_header(1, 0)[:n])


def test_unknown_record_tag_is_rejected_with_its_offset():
    data = encode_header(1, 2) + encode_put(b"a", b"b") + b"\x02\x01x"
    with pytest.raises(DecodeError, match="unknown WriteBatch tag 2") as info:
        decode_batch(data)
    assert info.value.offset == HEADER_SIZE + 5
    # C++ has already applied the records before the bad one.
    assert info.value.partial == (1, [(TYPE_VALUE, b"a", b"b")])


def test_truncated_put_or_delete_is_rejected():
    full = encode_header(9, 2) + encode_put(b"key", b"value" * 40) + encode_delete(b"gone" * 50)
    boundaries = {HEADER_SIZE, HEADER_SIZE + len(encode_put(b"key", b"value" * 40)), len(full)}
    for cut in range(HEADER_SIZE + 1, len(full)):
        if cut in boundaries:
            continue
        with pytest.raises(DecodeError, match="bad WriteBatch (Put|Delete)"):
            decode_batch(full[:cut])


def test_wrong_count_is_rejected_both_ways():
    body = encode_put(b"a", b"1") + encode_delete(b"b")
    for count in (0, 1, 3):
        with pytest.raises(DecodeError, match="wrong count") as info:
            decode_batch(encode_header(4, count) + body)
        assert len(info.value.partial[1]) == 2


def test_encode_rejects_unknown_kind():
    with pytest.raises(ValueError):
        encode_batch(1, [(5, b"k", b"v")])


# Batches of puts of one key length and one value length: the fixed-stride path.

def _record_loop_decode(data):
    """decode_batch with the fixed-stride path turned off: the reference."""
    with mock.patch.object(batch_module, "_decode_uniform_puts", lambda data, count: None):
        return decode_batch(data)


def _outcome(decode, data):
    try:
        return decode(data)
    except DecodeError as exc:
        return ("error", exc.reason, exc.offset, exc.partial)


@st.composite
def uniform_put_batches(draw):
    klen, vlen = draw(st.sampled_from([0, 1, 16, 127, 128, 300])), draw(st.sampled_from([0, 5, 100, 127, 128, 1000]))
    count = draw(st.integers(1, 40))
    ops = [(TYPE_VALUE, draw(st.binary(min_size=klen, max_size=klen)), draw(st.binary(min_size=vlen, max_size=vlen)))
           for _ in range(count)]
    return encode_batch(draw(st.integers(0, 2**56)), ops), ops


@given(uniform_put_batches())
def test_batch_of_same_length_puts_decodes_as_the_record_loop_does(batch):
    data, ops = batch
    assert decode_batch(data)[1] == ops == _record_loop_decode(data)[1]
    assert batch_module._decode_uniform_puts(data, len(ops)) == ops  # the fast path answered


@given(uniform_put_batches(), st.data())
def test_damaged_batch_of_same_length_puts_decodes_as_the_record_loop_does(batch, data):
    # One byte changed, or the batch cut short: whatever the record loop
    # makes of it (ops or the error with its partial ops), the same.
    raw, _ops = batch
    damaged = bytearray(raw)
    if data.draw(st.booleans()):
        at = data.draw(st.integers(HEADER_SIZE, len(raw) - 1))
        damaged[at] = data.draw(st.integers(0, 255))
    else:
        damaged = damaged[: data.draw(st.integers(HEADER_SIZE, len(raw) - 1))]
    assert _outcome(decode_batch, bytes(damaged)) == _outcome(_record_loop_decode, bytes(damaged))


def test_batch_of_thousands_of_same_length_puts_decodes_in_pieces():
    ops = [(TYPE_VALUE, b"k%07d" % i, b"v%09d" % i) for i in range(1500)]
    data = encode_batch(7, ops)
    assert batch_module._decode_uniform_puts(data, len(ops)) == ops
    assert decode_batch(data) == (7, ops)


def test_a_write_batch_reaches_the_wal_as_encode_batch_encodes_it(tmp_path):
    """WriteBatch keeps each operation as the pieces of its record: joined,
    they are encode_batch's records, long lengths, deletions and a prefixed
    view's keys included, and a batch appended to another keeps its ops."""
    import os

    import lsm
    from lsm.record import LogReader

    db = lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0)
    try:
        ops = [(TYPE_VALUE, b"k", b"v"), (TYPE_DELETION, b"d" * 200, b""), (TYPE_VALUE, b"x" * 130, b"y" * 5),
               (TYPE_VALUE, b"s", b"z" * 300), (TYPE_DELETION, b"e", b""), (TYPE_VALUE, b"", b"")]
        other = db.prefixed_db(b"p-").write_batch()
        other.put(b"q", b"w")
        other.delete(b"r")
        with db.write_batch() as wb:
            for kind, key, value in ops:
                wb.put(key, value) if kind == TYPE_VALUE else wb.delete(key)
            wb.append(other)
        ops += [(TYPE_VALUE, b"p-q", b"w"), (TYPE_DELETION, b"p-r", b"")]
        assert wb.approximate_size() == HEADER_SIZE  # cleared once written
        [wal] = [n for n in os.listdir(tmp_path / "db") if n.endswith(".log")]
        payloads = [p for _, p in LogReader((tmp_path / "db" / wal).read_bytes())]
        assert payloads[-1] == encode_batch(1, ops)
        assert db.get(b"s") == b"z" * 300 and db.get(b"d" * 200) is None and db.get(b"p-q") == b"w"
    finally:
        db.close()
