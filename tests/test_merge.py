"""merge_runs: sorted runs of row lists in, one sorted stream of chunks out."""
from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.compactor.merge import merge_runs


@st.composite
def runs(draw):
    """Runs of rows (key, -tag, value), each cut into lists as blocks are."""
    out = []
    for run_index in range(draw(st.integers(0, 4))):
        keys = sorted(draw(st.sets(st.binary(max_size=3), max_size=60)))
        rows = [(k, -(100 * run_index + 1), b"v") for k in keys]
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(rows) - 1)), max_size=8)))
        out.append([rows[a:b] for a, b in zip([0] + cuts, cuts + [len(rows)]) if rows[a:b]])
    return out


@settings(max_examples=300, deadline=None)
@given(runs(), st.integers(1, 20))
def test_merge_yields_every_row_once_in_order(runs, chunk_rows):
    chunks = list(merge_runs([iter(r) for r in runs], chunk_rows))
    merged = [row for chunk in chunks for row in chunk]
    assert merged == sorted(row for run in runs for block in run for row in block)
    assert all(chunks)  # no empty chunk


def test_lone_run_comes_out_in_chunks_not_block_by_block():
    # The output pays per chunk: a run left alone (the tail of a level after
    # the other inputs end) must not go out one small block at a time.
    blocks = [[(b"%05d" % (10 * b + i), -1, b"v") for i in range(10)] for b in range(50)]
    chunks = list(merge_runs([iter(blocks)], chunk_rows=100))
    assert [len(c) for c in chunks] == [100] * 5
    short = [[(b"00000", -5, b"w")]]
    chunks = list(merge_runs([iter(short), iter(blocks)], chunk_rows=100))
    assert all(len(c) >= 100 for c in chunks[1:-1])
