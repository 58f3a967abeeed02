"""Compaction picking, by LevelDB's scores and limits: which files a compaction takes, and why."""
from lsm.filemeta import FileMetaData
from lsm.keys import TYPE_VALUE, make_internal_key
from lsm.writer import picker
from lsm.writer.picker import (
    NUM_LEVELS,
    compute_score,
    deeper_ranges,
    max_bytes_for_level,
    overlapping_files,
    pick_compaction,
    pick_level_for_memtable_output,
    pick_range_compaction,
)

MB = 1 << 20
MAX_FILE = 2 * MB


def meta(number, lo, hi, size=1000, lo_seq=100, hi_seq=100):
    return FileMetaData(
        number,
        size,
        make_internal_key(lo, lo_seq, TYPE_VALUE),
        make_internal_key(hi, hi_seq, TYPE_VALUE),
    )


def empty_levels():
    return [[] for _ in range(NUM_LEVELS)]


def no_pointers():
    return [None] * NUM_LEVELS


def numbers(files):
    return sorted(f.number for f in files)


def test_max_bytes_for_level_grows_tenfold():
    assert max_bytes_for_level(1) == 10 * MB
    assert max_bytes_for_level(2) == 100 * MB
    assert max_bytes_for_level(3) == 1000 * MB


def test_level0_scores_by_file_count_and_deeper_levels_by_bytes():
    levels = empty_levels()
    levels[0] = [meta(i, b"a", b"b") for i in range(1, 3)]  # 2 of 4 files: 0.5
    levels[1] = [meta(10, b"a", b"z", size=15 * MB)]  # 1.5
    levels[2] = [meta(20, b"a", b"z", size=250 * MB)]  # 2.5
    level, score = compute_score(levels)
    assert level == 2 and score == 2.5
    levels[0] = [meta(i, b"a", b"b") for i in range(1, 13)]  # 3.0
    assert compute_score(levels) == (0, 3.0)


def test_no_compaction_when_every_score_is_below_one():
    levels = empty_levels()
    levels[0] = [meta(1, b"a", b"b"), meta(2, b"c", b"d"), meta(3, b"e", b"f")]
    levels[1] = [meta(10, b"a", b"z", size=9 * MB)]
    assert pick_compaction(levels, no_pointers(), MAX_FILE) is None


def test_level0_pick_takes_every_overlapping_level0_file():
    # 1:[a,c] meets 2:[b,e], which widens the range to meet 3:[d,f]; 4 is apart.
    levels = empty_levels()
    levels[0] = [meta(4, b"x", b"z"), meta(3, b"d", b"f"), meta(2, b"b", b"e"), meta(1, b"a", b"c")]
    plan = pick_compaction(levels, no_pointers(), MAX_FILE)
    assert plan.level == 0
    assert numbers(plan.inputs) == [1, 2, 3]
    assert not plan.trivial_move


def test_overlapping_files_at_level0_reexpands_range():
    levels = empty_levels()
    levels[0] = [meta(1, b"a", b"c"), meta(2, b"b", b"e"), meta(3, b"d", b"f"), meta(4, b"x", b"z")]
    assert numbers(overlapping_files(levels, 0, b"a", b"a")) == [1, 2, 3]
    levels[1] = [meta(10, b"a", b"c"), meta(11, b"d", b"f"), meta(12, b"x", b"z")]
    # Level >= 1: no re-expansion.
    assert numbers(overlapping_files(levels, 1, b"c", b"d")) == [10, 11]
    assert numbers(overlapping_files(levels, 1, None, b"b")) == [10]
    assert numbers(overlapping_files(levels, 1, b"y", None)) == [12]


def test_boundary_file_with_same_user_key_is_compacted_too():
    # File 10 ends at c@7 and file 11 starts at c@5: compacting 10 alone would
    # push c@7 below c@5, and a read would then find the older c@5 first.
    levels = empty_levels()
    levels[1] = [
        meta(10, b"a", b"c", size=6 * MB, hi_seq=7),
        meta(11, b"c", b"e", size=6 * MB, lo_seq=5),
        meta(12, b"f", b"g", size=1 * MB),
    ]
    plan = pick_compaction(levels, no_pointers(), MAX_FILE)
    assert plan.level == 1
    assert numbers(plan.inputs) == [10, 11]
    assert plan.compact_pointer == levels[1][1].largest


def test_next_level_boundary_files_are_added():
    levels = empty_levels()
    levels[1] = [meta(10, b"a", b"b", size=11 * MB)]
    # 20 meets [a,b]; 21 does not, but it holds older versions of c, 20's last key.
    levels[2] = [meta(20, b"a", b"c", hi_seq=9), meta(21, b"c", b"d", lo_seq=4), meta(22, b"x", b"y")]
    plan = pick_compaction(levels, no_pointers(), MAX_FILE)
    assert numbers(plan.next_inputs) == [20, 21]


def _grow_levels(level1_size):
    levels = empty_levels()
    levels[1] = [
        meta(10, b"a", b"b", size=level1_size),
        meta(11, b"c", b"d", size=level1_size),
        meta(12, b"e", b"f", size=level1_size),
    ]
    levels[2] = [meta(20, b"a", b"f", size=1 * MB), meta(21, b"m", b"n", size=1 * MB)]
    return levels


def test_grow_rule_takes_level_files_that_cost_no_extra_next_level_file():
    levels = _grow_levels(4 * MB)
    plan = pick_compaction(levels, no_pointers(), MAX_FILE)
    assert numbers(plan.inputs) == [10, 11, 12]
    assert numbers(plan.next_inputs) == [20]
    assert plan.compact_pointer == levels[1][2].largest


def test_grow_rule_stops_at_25_times_max_file_size():
    # 3 x 17 MB + 1 MB = 52 MB >= 25 x 2 MB: the job stays at one level file.
    levels = _grow_levels(17 * MB)
    plan = pick_compaction(levels, no_pointers(), MAX_FILE)
    assert numbers(plan.inputs) == [10]
    assert numbers(plan.next_inputs) == [20]
    assert plan.compact_pointer == levels[1][0].largest


def test_grow_rule_rejected_when_it_adds_next_level_files():
    levels = _grow_levels(4 * MB)
    levels[2] = [meta(20, b"a", b"c", size=MB), meta(21, b"d", b"f", size=MB)]
    plan = pick_compaction(levels, no_pointers(), MAX_FILE)
    # Seed 10 [a,b] meets 20 [a,c]; growing to [a,c] would take 11 [c,d],
    # whose key d would pull in 21 as well: not free, so not grown.
    assert numbers(plan.inputs) == [10]
    assert numbers(plan.next_inputs) == [20]


def test_single_file_without_overlap_is_a_trivial_move():
    levels = empty_levels()
    levels[1] = [meta(10, b"a", b"c", size=11 * MB)]
    levels[3] = [meta(30, b"a", b"b", size=5 * MB)]
    plan = pick_compaction(levels, no_pointers(), MAX_FILE)
    assert plan.trivial_move
    assert numbers(plan.grandparents) == [30]


def test_a_lone_level0_file_is_rewritten_not_moved_when_level0_may_be_stored_uncompressed():
    # A level-0 table may be stored for level 0 only (Options.compress_level0):
    # moved down as it is, it would keep that form in a deeper level.
    levels = empty_levels()
    levels[0] = [meta(i, b"a%d" % i, b"a%d" % i) for i in range(1, 5)]  # disjoint: each its own plan
    assert pick_compaction(levels, no_pointers(), MAX_FILE).trivial_move
    plan = pick_compaction(levels, no_pointers(), MAX_FILE, move_level0=False)
    assert plan.level == 0 and numbers(plan.inputs) == [1] and not plan.trivial_move
    levels = empty_levels()
    levels[1] = [meta(10, b"a", b"c", size=11 * MB)]
    assert pick_compaction(levels, no_pointers(), MAX_FILE, move_level0=False).trivial_move


def test_no_trivial_move_over_heavy_grandparents():
    levels = empty_levels()
    levels[1] = [meta(10, b"a", b"c", size=11 * MB)]
    levels[3] = [meta(30, b"a", b"b", size=21 * MB)]  # > 10 x 2 MB
    plan = pick_compaction(levels, no_pointers(), MAX_FILE)
    assert not plan.trivial_move
    levels[3] = []
    levels[2] = [meta(20, b"b", b"d")]
    plan = pick_compaction(levels, no_pointers(), MAX_FILE)
    assert not plan.trivial_move and numbers(plan.next_inputs) == [20]


def test_compact_pointer_moves_round_robin():
    levels = empty_levels()
    levels[1] = [meta(10, b"a", b"b", size=4 * MB), meta(11, b"c", b"d", size=4 * MB),
                 meta(12, b"e", b"f", size=4 * MB)]
    pointers = no_pointers()
    seen = []
    for _ in range(4):
        plan = pick_compaction(levels, pointers, MAX_FILE)
        seen.append(plan.inputs[0].number)
        pointers[1] = plan.compact_pointer
    assert seen == [10, 11, 12, 10]


def test_busy_files_are_never_picked_again():
    levels = empty_levels()
    levels[1] = [meta(10, b"a", b"b", size=6 * MB), meta(11, b"c", b"d", size=6 * MB)]
    levels[2] = [meta(20, b"a", b"b"), meta(21, b"c", b"d")]
    first = pick_compaction(levels, no_pointers(), MAX_FILE)
    assert numbers(first.inputs) == [10] and numbers(first.next_inputs) == [20]
    # 11's job would otherwise be a second pick; with 10's job running, the
    # busy set excludes 10 and 20, and the busy score counts only file 11.
    levels[1][1].size = 11 * MB
    busy = first.file_numbers
    ranges = {2: [first.output_range]}
    second = pick_compaction(levels, no_pointers(), MAX_FILE, busy=busy, busy_ranges=ranges)
    assert numbers(second.inputs) == [11] and numbers(second.next_inputs) == [21]
    assert not (second.file_numbers & busy)
    # A next-level file busy under another job blocks every seed that needs it.
    assert pick_compaction(levels, no_pointers(), MAX_FILE, busy={21, 10}) is None


def test_busy_range_at_output_level_blocks_overlapping_plan():
    levels = empty_levels()
    levels[1] = [meta(10, b"c", b"d", size=11 * MB)]
    plan = pick_compaction(levels, no_pointers(), MAX_FILE, busy_ranges={2: [(b"a", b"c")]})
    assert plan is None
    plan = pick_compaction(levels, no_pointers(), MAX_FILE, busy_ranges={2: [(b"a", b"b")]})
    assert numbers(plan.inputs) == [10]


def test_level0_file_overlapping_a_busy_level0_file_waits():
    # 1 is being compacted; 2 overlaps it, so 2 may not go down before 1 does
    # (its keys are newer; moved separately they would end up in the wrong order).
    levels = empty_levels()
    levels[0] = [meta(1, b"a", b"c"), meta(2, b"b", b"d"), meta(3, b"x", b"y"),
                 meta(4, b"p", b"q"), meta(5, b"m", b"n"), meta(6, b"j", b"k")]
    plan = pick_compaction(levels, no_pointers(), MAX_FILE, busy={1})
    assert 1 not in plan.file_numbers and 2 not in plan.file_numbers
    assert numbers(plan.inputs) == [6]


def test_range_compaction_above_level0_takes_files_up_to_max_file_size():
    levels = empty_levels()
    levels[1] = [meta(10 + i, bytes([97 + 2 * i]), bytes([98 + 2 * i]), size=MB) for i in range(5)]
    plan = pick_range_compaction(levels, 1, b"a", b"z", MAX_FILE)
    assert numbers(plan.inputs) == [10, 11]
    assert not plan.trivial_move
    assert pick_range_compaction(levels, 1, b"0", b"1", MAX_FILE) is None
    plan = pick_range_compaction(levels, 1, None, None, 100 * MB)
    assert numbers(plan.inputs) == [10, 11, 12, 13, 14]


def test_range_compaction_at_level0_takes_all_overlapping_files():
    levels = empty_levels()
    levels[0] = [meta(1, b"a", b"c"), meta(2, b"b", b"e"), meta(3, b"x", b"z")]
    plan = pick_range_compaction(levels, 0, b"a", b"a", MAX_FILE)
    assert numbers(plan.inputs) == [1, 2]


def test_memtable_output_goes_down_to_level2_when_nothing_overlaps():
    levels = empty_levels()
    assert pick_level_for_memtable_output(levels, b"a", b"b", 20 * MB) == 2


def test_memtable_output_stays_at_level0_over_level0_overlap():
    levels = empty_levels()
    levels[0] = [meta(1, b"b", b"c")]
    assert pick_level_for_memtable_output(levels, b"a", b"b", 20 * MB) == 0
    assert pick_level_for_memtable_output(levels, b"d", b"e", 20 * MB) == 2


def test_memtable_output_stops_above_overlap_or_heavy_grandparents():
    levels = empty_levels()
    levels[1] = [meta(10, b"a", b"b")]
    assert pick_level_for_memtable_output(levels, b"a", b"c", 20 * MB) == 0
    levels[1] = []
    levels[2] = [meta(20, b"a", b"b")]
    assert pick_level_for_memtable_output(levels, b"a", b"c", 20 * MB) == 1
    levels[2] = []
    levels[3] = [meta(30, b"a", b"b", size=21 * MB)]
    assert pick_level_for_memtable_output(levels, b"a", b"c", 20 * MB) == 1
    levels[3] = [meta(30, b"a", b"b", size=19 * MB)]
    assert pick_level_for_memtable_output(levels, b"a", b"c", 20 * MB) == 2
    # A level another job is writing the span of is not entered.
    assert pick_level_for_memtable_output(
        levels, b"a", b"c", 20 * MB, busy_ranges={1: [(b"b", b"d")]}
    ) == 0


def test_deeper_ranges_cover_only_levels_below_output_and_merge_overlaps():
    levels = empty_levels()
    levels[1] = [meta(10, b"a", b"z")]
    levels[2] = [meta(20, b"a", b"b")]
    levels[3] = [meta(30, b"c", b"e"), meta(31, b"m", b"n")]
    levels[4] = [meta(40, b"d", b"f"), meta(41, b"x", b"y")]
    assert deeper_ranges(levels, 2) == [(b"c", b"f"), (b"m", b"n"), (b"x", b"y")]
    assert deeper_ranges(levels, 1) == [(b"a", b"b"), (b"c", b"f"), (b"m", b"n"), (b"x", b"y")]
    assert deeper_ranges(levels, 2, b"g", b"w") == [(b"m", b"n")]
    assert deeper_ranges(levels, 6) == []


def test_plan_conflicts_reports_busy_files_and_ranges():
    levels = empty_levels()
    levels[1] = [meta(10, b"c", b"d")]
    plan = pick_range_compaction(levels, 1, None, None, MAX_FILE)
    assert picker.plan_conflicts(plan, busy={10})
    assert picker.plan_conflicts(plan, busy_ranges={2: [(b"d", b"e")]})
    assert not picker.plan_conflicts(plan, busy={11}, busy_ranges={3: [(b"a", b"z")]})


def _random_sorted_level(rng, n, shared_boundaries=True):
    """A level >= 1: sorted, disjoint files, some sharing a boundary user key
    (older versions of the previous file's last key)."""
    keys = sorted(rng.sample(range(10 * n + 10), 2 * n))
    files = []
    for i in range(n):
        lo, hi = b"%05d" % keys[2 * i], b"%05d" % keys[2 * i + 1]
        files.append(meta(1000 + i, lo, hi, size=rng.randint(1, 5) * MB, lo_seq=50, hi_seq=60))
    if shared_boundaries:
        for i in range(1, n):
            if rng.random() < 0.3:
                prev = files[i - 1]
                # this file now starts with older versions of prev's last key
                files[i].smallest = make_internal_key(prev.largest_user_key, 10, TYPE_VALUE)
    return files


def test_binary_searches_agree_with_a_plain_scan_of_each_level():
    import random

    rng = random.Random(4)
    for _ in range(200):
        levels = empty_levels()
        levels[2] = _random_sorted_level(rng, rng.randint(0, 30))
        lo = b"%05d" % rng.randrange(400)
        hi = b"%05d" % rng.randrange(400)
        lo, hi = min(lo, hi), max(lo, hi)
        for begin, end in ((lo, hi), (None, hi), (lo, None), (None, None)):
            scan = [f for f in levels[2]
                    if not ((begin is not None and f.largest_user_key < begin)
                            or (end is not None and f.smallest_user_key > end))]
            assert overlapping_files(levels, 2, begin, end) == scan
        # Boundary files: the chain of files starting with an older version
        # of the previous file's last key.
        for i, f in enumerate(levels[2]):
            got = picker._add_boundary_inputs(2, levels[2], [f])
            want = [f]
            j = i
            while j + 1 < len(levels[2]) and (
                levels[2][j + 1].smallest_user_key == levels[2][j].largest_user_key
            ):
                want.append(levels[2][j + 1])
                j += 1
            assert got == want
            # Level 0's plain scan finds the same chain.
            assert picker._add_boundary_inputs(0, levels[2], [f]) == want


def _level0_plan(sizes):
    files = [meta(i + 1, b"k%03d" % (10 * i), b"k%03d" % (10 * i + 9), size=size) for i, size in enumerate(sizes)]
    return picker.CompactionPlan(level=0, inputs=files)


def test_a_large_level0_compaction_splits_into_contiguous_pieces_at_file_boundaries():
    plan = _level0_plan([MAX_FILE] * 8)
    bounds = picker.subcompaction_bounds(plan, 4, MAX_FILE)
    assert len(bounds) == 4
    assert bounds[0][0] is None and bounds[-1][1] is None
    assert all(upper == next_lower for (_, upper), (next_lower, _) in zip(bounds, bounds[1:]))
    starts = {f.smallest[:-8] for f in plan.inputs}
    assert all(upper in starts for _, upper in bounds[:-1])


def test_small_deeper_or_single_worker_compactions_stay_whole():
    assert picker.subcompaction_bounds(_level0_plan([1000] * 8), 4, MAX_FILE) == [(None, None)]
    assert picker.subcompaction_bounds(_level0_plan([MAX_FILE] * 8), 1, MAX_FILE) == [(None, None)]
    deeper = picker.CompactionPlan(level=1, inputs=_level0_plan([MAX_FILE] * 8).inputs)
    assert picker.subcompaction_bounds(deeper, 4, MAX_FILE) == [(None, None)]


def test_subcompactions_are_capped_whatever_the_worker_count():
    plan = _level0_plan([MAX_FILE] * 40)
    assert len(picker.subcompaction_bounds(plan, 64, MAX_FILE)) == picker.MAX_SUBCOMPACTIONS
