"""VersionEdit codec (lsm.version_edit): C++ byte order, the spec's captured bytes, rejections."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsm.coding import encode_length_prefixed, encode_varint
from lsm.errors import DecodeError
from lsm.filemeta import FileMetaData
from lsm.keys import TYPE_DELETION, TYPE_VALUE, make_internal_key
from lsm.record import LogReader, LogWriter
from lsm.version_edit import NUM_LEVELS, RETIRED_TAGS, TAG_LARGE_VALUE_REF, VersionEdit

BYTEWISE = b"leveldb.BytewiseComparator"


def ikey(user_key, seq, kind=TYPE_VALUE):
    return make_internal_key(user_key, seq, kind)


def test_manifest_000002_bytes_from_spec():
    snapshot = VersionEdit(comparator=BYTEWISE)
    edit = VersionEdit(log_number=3, prev_log_number=0, next_file_number=4, last_sequence=0)
    writer = LogWriter()
    data = writer.encode(snapshot.encode()) + writer.encode(edit.encode())
    expected = (bytes.fromhex("56f9b8f81c0001 011a") + BYTEWISE
                + bytes.fromhex("a49c8bbe080001 0203 0900 0304 0400"))
    assert data == expected
    assert len(data) == 50
    assert [VersionEdit.decode(p) for _, p in LogReader(data, strict=True)] == [snapshot, edit]


def test_new_db_manifest_payload_from_spec():
    edit = VersionEdit(comparator=BYTEWISE, log_number=0, next_file_number=2, last_sequence=0)
    assert edit.encode() == b"\x01\x1a" + BYTEWISE + bytes.fromhex("0200 0302 0400")


def test_flush_record_bytes_from_spec():
    edit = VersionEdit(log_number=6, prev_log_number=0, next_file_number=7, last_sequence=4)
    edit.new_files.append((0, FileMetaData(5, 241, ikey(b"apple", 4, TYPE_DELETION),
                                           ikey(b"cherry", 3))))
    expected = (bytes.fromhex("0206 0900 0307 0404 07 00 05 f101 0d") + b"apple"
                + bytes.fromhex("0004000000000000 0e") + b"cherry" + bytes.fromhex("0103000000000000"))
    assert edit.encode() == expected
    assert VersionEdit.decode(expected) == edit


def test_compaction_record_order_deleted_files_sorted():
    edit = VersionEdit(log_number=11, prev_log_number=0, next_file_number=14, last_sequence=3000)
    edit.compact_pointers.append((0, ikey(b"key001999", 2000)))
    edit.deleted_files.update({(0, 8), (0, 5)})
    edit.new_files.append((1, FileMetaData(13, 22969, ikey(b"key000001", 2), ikey(b"key001999", 2000))))
    data = edit.encode()
    expected = (bytes.fromhex("020b 0900 030e 04b817")
                + b"\x05\x00" + encode_length_prefixed(ikey(b"key001999", 2000))
                + bytes.fromhex("060005 060008")
                + b"\x07\x01\x0d" + encode_varint(22969)
                + encode_length_prefixed(ikey(b"key000001", 2))
                + encode_length_prefixed(ikey(b"key001999", 2000)))
    assert data == expected


def test_comparator_then_scalars_in_cxx_order():
    edit = VersionEdit(comparator=b"c", log_number=1, prev_log_number=2,
                       next_file_number=3, last_sequence=4)
    assert edit.encode() == bytes.fromhex("010163 0201 0902 0303 0404")


level_st = st.integers(0, NUM_LEVELS - 1)
ikey_st = st.builds(make_internal_key, st.binary(max_size=40), st.integers(0, 2**56 - 1),
                    st.sampled_from([TYPE_DELETION, TYPE_VALUE]))
meta_st = st.builds(FileMetaData, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), ikey_st, ikey_st)
opt_u64 = st.none() | st.integers(0, 2**64 - 1)
edit_st = st.builds(
    VersionEdit,
    comparator=st.none() | st.binary(max_size=40),
    log_number=opt_u64, prev_log_number=opt_u64, next_file_number=opt_u64, last_sequence=opt_u64,
    compact_pointers=st.lists(st.tuples(level_st, ikey_st), max_size=4),
    deleted_files=st.sets(st.tuples(level_st, st.integers(0, 2**64 - 1)), max_size=6),
    new_files=st.lists(st.tuples(level_st, meta_st), max_size=6),
)


@given(edit_st)
def test_version_edit_round_trip_every_field(edit):
    data = edit.encode()
    assert VersionEdit.decode(data) == edit
    assert VersionEdit.decode(data).encode() == data


def test_tags_in_any_order_are_accepted():
    data = bytes.fromhex("0404 0303 0900 0202") + b"\x01\x01x"
    assert VersionEdit.decode(data) == VersionEdit(comparator=b"x", log_number=2, prev_log_number=0,
                                                  next_file_number=3, last_sequence=4)


def test_retired_tag_8_is_rejected_as_unknown():
    assert TAG_LARGE_VALUE_REF == 8 and 8 in RETIRED_TAGS
    with pytest.raises(DecodeError, match="unknown tag 8") as info:
        VersionEdit.decode(bytes.fromhex("0203 08 00 00"))
    assert info.value.offset == 2


@pytest.mark.parametrize("tag", [0, 10, 11, 127, 300])
def test_unknown_tag_is_rejected(tag):
    with pytest.raises(DecodeError, match="unknown tag"):
        VersionEdit.decode(b"\x02\x03" + encode_varint(tag) + b"\x00")


@pytest.mark.parametrize("field", ["compact_pointer", "deleted_file", "new_file"])
def test_level_7_or_more_is_rejected(field):
    key = encode_length_prefixed(ikey(b"k", 1))
    encodings = {
        "compact_pointer": lambda lvl: b"\x05" + encode_varint(lvl) + key,
        "deleted_file": lambda lvl: b"\x06" + encode_varint(lvl) + b"\x05",
        "new_file": lambda lvl: b"\x07" + encode_varint(lvl) + b"\x05\x10" + key + key,
    }
    VersionEdit.decode(encodings[field](NUM_LEVELS - 1))
    for level in (NUM_LEVELS, 100):
        with pytest.raises(DecodeError, match="level"):
            VersionEdit.decode(encodings[field](level))


def test_encoding_a_level_of_7_is_refused():
    with pytest.raises(ValueError):
        VersionEdit(deleted_files={(7, 1)}).encode()


def test_truncated_field_is_rejected_at_every_cut():
    edit = VersionEdit(comparator=BYTEWISE, log_number=300, prev_log_number=0,
                       next_file_number=70000, last_sequence=2**40)
    edit.compact_pointers.append((2, ikey(b"ptr", 9)))
    edit.deleted_files.add((1, 12345))
    edit.new_files.append((3, FileMetaData(77, 2**33, ikey(b"a", 1), ikey(b"z" * 200, 2))))
    data = edit.encode()
    # Field boundaries: where each single-field edit's encoding ends in C++ order.
    parts = [VersionEdit(comparator=BYTEWISE), VersionEdit(log_number=300),
             VersionEdit(prev_log_number=0), VersionEdit(next_file_number=70000),
             VersionEdit(last_sequence=2**40), VersionEdit(compact_pointers=edit.compact_pointers),
             VersionEdit(deleted_files=edit.deleted_files), VersionEdit(new_files=edit.new_files)]
    boundaries, pos = {0}, 0
    for part in parts:
        pos += len(part.encode())
        boundaries.add(pos)
    assert pos == len(data)
    for cut in range(len(data)):
        if cut in boundaries:
            VersionEdit.decode(data[:cut])
        else:
            with pytest.raises(DecodeError, match="VersionEdit: "):
                VersionEdit.decode(data[:cut])


def test_empty_internal_key_is_rejected():
    with pytest.raises(DecodeError, match="compaction pointer"):
        VersionEdit.decode(b"\x05\x00\x00")
    with pytest.raises(DecodeError, match="new-file entry"):
        VersionEdit.decode(b"\x07\x00\x01\x02\x00\x00")


def test_unterminated_tag_varint_is_invalid_tag():
    with pytest.raises(DecodeError, match="invalid tag"):
        VersionEdit.decode(b"\x02\x03\xff\xff\xff\xff\xff\xff")


def test_tag_numbers_are_the_on_disk_ones():
    from lsm import version_edit as ve
    assert [ve.TAG_COMPARATOR, ve.TAG_LOG_NUMBER, ve.TAG_NEXT_FILE_NUMBER, ve.TAG_LAST_SEQUENCE,
            ve.TAG_COMPACT_POINTER, ve.TAG_DELETED_FILE, ve.TAG_NEW_FILE, ve.TAG_LARGE_VALUE_REF,
            ve.TAG_PREV_LOG_NUMBER] == list(range(1, 10))
