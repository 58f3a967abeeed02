"""Compaction picking: pure policy: no files, no sockets, no clocks.

Everything here is a function of the level lists it is given:
``levels[L]`` is a list of FileMetaData for L = 0..6 (level 0 in any order;
levels >= 1 sorted by smallest key and non-overlapping) and
``compact_pointers[L]`` is an internal key or None. The writer owns those and
applies the returned plan; this module mutates nothing.

LevelDB runs one compaction at a time. Here several may run at once in other
processes, so a pick may be told what is in flight: ``busy`` (file numbers
that running jobs read) and ``busy_ranges`` (level -> user-key spans that
running jobs are writing). A plan never reads a busy file and never writes
into a span another job is writing, so the results of concurrent jobs can be
committed in any order.
"""
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from ..filemeta import FileMetaData
from ..keys import sort_key
from ..version_edit import NUM_LEVELS

L0_COMPACTION_TRIGGER = 4
MAX_MEM_COMPACT_LEVEL = 2

_MB = 1 << 20


LEVEL1_BYTES = 10 * _MB  # LevelDB's fixed level-1 size; lsm's level_size_base option


def max_bytes_for_level(level: int, base: int = LEVEL1_BYTES) -> float:
    """MaxBytesForLevel: `base` (10 MiB) at level 1, ten times more per level below."""
    result = float(base)
    while level > 1:
        result *= 10
        level -= 1
    return result


def max_grandparent_overlap_bytes(max_file_size: int) -> int:
    return 10 * max_file_size


def expanded_compaction_byte_size_limit(max_file_size: int) -> int:
    return 25 * max_file_size


def total_file_size(files) -> int:
    return sum(f.size for f in files)


@dataclass
class CompactionPlan:
    """Which files one compaction reads, from `level` into `level + 1`."""

    level: int
    inputs: list[FileMetaData]
    next_inputs: list[FileMetaData] = field(default_factory=list)
    grandparents: list[FileMetaData] = field(default_factory=list)
    # The writer records this in the edit (tag 5) so the next pick at this
    # level starts after it: round robin over the key space.
    compact_pointer: bytes | None = None
    trivial_move: bool = False

    @property
    def output_level(self) -> int:
        return self.level + 1

    @property
    def file_numbers(self) -> frozenset:
        """Numbers of every file the job reads (what becomes `busy`)."""
        return frozenset(f.number for f in self.inputs) | frozenset(
            f.number for f in self.next_inputs
        )

    @property
    def output_range(self) -> tuple[bytes, bytes]:
        """User-key span the job writes at output_level (what becomes a busy range)."""
        smallest, largest = _range(self.inputs + self.next_inputs)
        return smallest[:-8], largest[:-8]


# ---------------------------------------------------------------- helpers


def _range(files):
    """(smallest, largest) internal keys over files (GetRange)."""
    smallest = min((f.smallest for f in files), key=sort_key)
    largest = max((f.largest for f in files), key=sort_key)
    return smallest, largest


def _spans_overlap(a_lo, a_hi, b_lo, b_hi) -> bool:
    return not (a_hi < b_lo or b_hi < a_lo)


def _largest_ukey(f):
    return f.largest[:-8]


def _smallest_ukey(f):
    return f.smallest[:-8]


def _smallest_sort_key(f):
    return sort_key(f.smallest)


def overlapping_files(levels, level, begin_ukey, end_ukey) -> list[FileMetaData]:
    """Files of `level` whose user-key range meets [begin_ukey, end_ukey]
    (None: unbounded) -- LevelDB's GetOverlappingInputs.

    At level 0 files overlap each other, so when a file that meets the range
    sticks out of it the range grows and the search restarts: a level-0 file
    may be compacted only together with every older level-0 file holding
    the same keys, or the older version would shadow the newer one.
    Deeper levels are sorted and disjoint: two binary searches (the writer
    picks often, and level 4 may hold thousands of files)."""
    files = levels[level]
    if level > 0:
        lo = 0 if begin_ukey is None else bisect_left(files, begin_ukey, key=_largest_ukey)
        hi = len(files) if end_ukey is None else bisect_right(files, end_ukey, key=_smallest_ukey)
        return files[lo:hi]
    result = []
    i = 0
    while i < len(files):
        f = files[i]
        i += 1
        file_start = f.smallest[:-8]
        file_limit = f.largest[:-8]
        if begin_ukey is not None and file_limit < begin_ukey:
            continue
        if end_ukey is not None and file_start > end_ukey:
            continue
        result.append(f)
        if begin_ukey is not None and file_start < begin_ukey:
            begin_ukey = file_start
            result = []
            i = 0
        elif end_ukey is not None and file_limit > end_ukey:
            end_ukey = file_limit
            result = []
            i = 0
    return result


def _overlap_in_level(levels, level, smallest_ukey, largest_ukey) -> bool:
    if level > 0:
        return bool(overlapping_files(levels, level, smallest_ukey, largest_ukey))
    for f in levels[level]:
        if not (f.largest[:-8] < smallest_ukey or f.smallest[:-8] > largest_ukey):
            return True
    return False


def _find_boundary_file(level, level_files, largest):
    """FindSmallestBoundaryFile: the file whose smallest key is the first
    one after `largest` with the same user key, or None."""
    ukey = largest[:-8]
    largest_sk = sort_key(largest)
    if level > 0:
        i = bisect_right(level_files, largest_sk, key=_smallest_sort_key)
        if i < len(level_files) and level_files[i].smallest[:-8] == ukey:
            return level_files[i]
        return None
    boundary = None
    boundary_sk = None
    for f in level_files:
        if f.smallest[:-8] != ukey:
            continue
        sk = sort_key(f.smallest)
        if sk > largest_sk and (boundary is None or sk < boundary_sk):
            boundary, boundary_sk = f, sk
    return boundary


def _add_boundary_inputs(level, level_files, compaction_files) -> list[FileMetaData]:
    """AddBoundaryInputs: a user key whose versions straddle two files of one
    level must be compacted whole. Example: file 7 ends at a@5 and file 8
    starts at a@3. Compacting only file 7 would move a@5 down a level while
    a@3 stays above it, and a read would then find the older a@3 first."""
    if not compaction_files:
        return compaction_files
    result = list(compaction_files)
    largest = max((f.largest for f in result), key=sort_key)
    while True:
        boundary = _find_boundary_file(level, level_files, largest)
        if boundary is None:
            return result
        result.append(boundary)
        largest = boundary.largest


def _user_range(files):
    smallest, largest = _range(files)
    return smallest[:-8], largest[:-8]


def _plan_is_blocked(plan, busy, busy_ranges) -> bool:
    if busy:
        for f in plan.inputs:
            if f.number in busy:
                return True
        for f in plan.next_inputs:
            if f.number in busy:
                return True
    if busy_ranges:
        # Writing the span another job writes would make two jobs' outputs
        # overlap in one level; reading a span of a level while another job
        # puts new files there would miss their keys.
        checks = (
            (plan.level + 1, plan.output_range),
            (plan.level, _user_range(plan.inputs)),
        )
        for level, (lo, hi) in checks:
            for b_lo, b_hi in busy_ranges.get(level, ()):
                if _spans_overlap(lo, hi, b_lo, b_hi):
                    return True
    return False


def plan_conflicts(plan, busy=frozenset(), busy_ranges=None) -> bool:
    """True when `plan` reads a busy file or writes into a busy range; for
    callers holding a plan from pick_range_compaction while jobs run."""
    return _plan_is_blocked(plan, busy, busy_ranges)


def _setup_other_inputs(levels, level, inputs, max_file_size, busy=frozenset(), grow=True):
    """SetupOtherInputs: level+1 inputs, the grow rule, grandparents and the
    new compact pointer. Returns a plan (trivial_move not yet decided)."""
    inputs = _add_boundary_inputs(level, levels[level], inputs)
    smallest, largest = _range(inputs)
    next_inputs = overlapping_files(levels, level + 1, smallest[:-8], largest[:-8])
    next_inputs = _add_boundary_inputs(level + 1, levels[level + 1], next_inputs)

    all_start, all_limit = _range(inputs + next_inputs)

    if next_inputs and grow:
        # Grow the level inputs to everything the combined range covers when
        # that costs no extra level+1 file: more work done for the same
        # rewrite of level+1, bounded so one job stays reasonably small.
        expanded0 = overlapping_files(levels, level, all_start[:-8], all_limit[:-8])
        expanded0 = _add_boundary_inputs(level, levels[level], expanded0)
        limit = expanded_compaction_byte_size_limit(max_file_size)
        if (
            len(expanded0) > len(inputs)
            and total_file_size(next_inputs) + total_file_size(expanded0) < limit
            and not any(f.number in busy for f in expanded0)
        ):
            new_start, new_limit = _range(expanded0)
            expanded1 = overlapping_files(levels, level + 1, new_start[:-8], new_limit[:-8])
            expanded1 = _add_boundary_inputs(level + 1, levels[level + 1], expanded1)
            if len(expanded1) == len(next_inputs):
                largest = new_limit
                inputs = expanded0
                next_inputs = expanded1
                all_start, all_limit = _range(inputs + next_inputs)

    grandparents = []
    if level + 2 < NUM_LEVELS:
        grandparents = overlapping_files(levels, level + 2, all_start[:-8], all_limit[:-8])

    return CompactionPlan(
        level=level,
        inputs=inputs,
        next_inputs=next_inputs,
        grandparents=grandparents,
        compact_pointer=largest,
    )


def _sorted_level(levels, level):
    files = levels[level]
    if level == 0:
        # LevelDB keeps every level, 0 included, sorted by smallest key;
        # the round robin over level 0 depends on that order.
        return sorted(files, key=lambda f: (sort_key(f.smallest), f.number))
    return files


# ---------------------------------------------------------------- scores


def level_scores(levels, busy=frozenset(), base=LEVEL1_BYTES) -> list[float]:
    """Score of levels 0..5; files in `busy` do not count (a running job
    already works them off)."""
    scores = []
    for level in range(NUM_LEVELS - 1):
        files = [f for f in levels[level] if f.number not in busy] if busy else levels[level]
        if level == 0:
            # Count files rather than bytes: every level-0 file costs a
            # read on every lookup, however small.
            scores.append(len(files) / L0_COMPACTION_TRIGGER)
        else:
            scores.append(total_file_size(files) / max_bytes_for_level(level, base))
    return scores


def compute_score(levels, busy=frozenset(), base=LEVEL1_BYTES) -> tuple[int, float]:
    """(level, score) of the level most in need of compaction (first wins ties)."""
    best_level, best_score = -1, -1.0
    for level, score in enumerate(level_scores(levels, busy, base)):
        if score > best_score:
            best_level, best_score = level, score
    return best_level, best_score


# ---------------------------------------------------------------- picking


def _candidates(files, pointer):
    """Seeds in round-robin order: first the files after the pointer, then
    the ones before it (wrap around)."""
    if pointer is None:
        return list(files)
    psk = sort_key(pointer)
    for i, f in enumerate(files):
        if sort_key(f.largest) > psk:
            return files[i:] + files[:i]
    return list(files)


def _plan_from_seed(levels, level, seed, max_file_size, busy, busy_ranges, move_level0=True):
    """The plan grown from one seed file, or None when it collides with a
    running job. move_level0=False: a level-0 plan is never a trivial move."""
    inputs = [seed]
    if level == 0:
        smallest, largest = _range(inputs)
        inputs = overlapping_files(levels, 0, smallest[:-8], largest[:-8])
    plan = _setup_other_inputs(levels, level, inputs, max_file_size, busy)
    if _plan_is_blocked(plan, busy, busy_ranges):
        # Growing may be what ran into another job's span; the plain plan
        # may still be free.
        plan = _setup_other_inputs(levels, level, inputs, max_file_size, busy, grow=False)
        if _plan_is_blocked(plan, busy, busy_ranges):
            return None
    plan.trivial_move = (
        (level > 0 or move_level0)
        and len(plan.inputs) == 1
        and not plan.next_inputs
        and total_file_size(plan.grandparents) <= max_grandparent_overlap_bytes(max_file_size)
    )
    return plan


def pick_compaction(
    levels,
    compact_pointers,
    max_file_size,
    busy=frozenset(),
    busy_ranges=None,
    seek_candidate=None,
    level_base=LEVEL1_BYTES,
    move_level0=True,
) -> CompactionPlan | None:
    """PickCompaction: the next size compaction, or a seek compaction of
    `seek_candidate` = (level, FileMetaData) when no level needs one.

    Levels are tried in decreasing score (>= 1); within a level, seeds in
    round-robin order from the compact pointer. A seed whose plan touches a
    busy file or busy range is skipped, so concurrent jobs stay disjoint.
    move_level0=False: level-0 files are rewritten, never moved down as
    they are (they may be stored for level 0 only: Options.compress_level0)."""
    busy = frozenset(busy)
    scores = level_scores(levels, busy, level_base)
    order = sorted(
        (level for level, score in enumerate(scores) if score >= 1),
        key=lambda level: (-scores[level], level),
    )
    for level in order:
        files = _sorted_level(levels, level)
        for seed in _candidates(files, compact_pointers[level]):
            if seed.number in busy:
                continue
            plan = _plan_from_seed(levels, level, seed, max_file_size, busy, busy_ranges, move_level0)
            if plan is not None:
                return plan
    if seek_candidate is not None:
        level, f = seek_candidate
        if level < NUM_LEVELS - 1 and f.number not in busy and any(
            g.number == f.number for g in levels[level]
        ):
            return _plan_from_seed(levels, level, f, max_file_size, busy, busy_ranges, move_level0)
    return None


def pick_range_compaction(
    levels, level, begin_ukey, end_ukey, max_file_size
) -> CompactionPlan | None:
    """CompactRange: compact the files of `level` meeting [begin_ukey, end_ukey]
    (None: unbounded). Above level 0 a single job takes files only until
    their total reaches max_file_size; the caller repeats for the rest.
    Never a trivial move: a manual compaction is asked to rewrite."""
    if not 0 <= level < NUM_LEVELS - 1:
        raise ValueError(f"cannot compact level {level} into level {level + 1}")
    inputs = overlapping_files(levels, level, begin_ukey, end_ukey)
    if not inputs:
        return None
    if level > 0:
        total = 0
        for i, f in enumerate(inputs):
            total += f.size
            if total >= max_file_size:
                inputs = inputs[: i + 1]
                break
    return _setup_other_inputs(levels, level, inputs, max_file_size)


def pick_level_for_memtable_output(
    levels, smallest_ukey, largest_ukey, max_grandparent_overlap, busy_ranges=None
) -> int:
    """PickLevelForMemTableOutput: push a new table below level 0 (at most to
    level 2) while nothing there overlaps it, so it is not compacted again
    soon; stop before a level whose next level it overlaps too much.
    A level another job is writing the span of is never entered."""
    level = 0
    if _overlap_in_level(levels, 0, smallest_ukey, largest_ukey):
        return level
    while level < MAX_MEM_COMPACT_LEVEL:
        if _overlap_in_level(levels, level + 1, smallest_ukey, largest_ukey):
            break
        if busy_ranges and any(
            _spans_overlap(smallest_ukey, largest_ukey, lo, hi)
            for lo, hi in busy_ranges.get(level + 1, ())
        ):
            break
        if level + 2 < NUM_LEVELS:
            overlaps = overlapping_files(levels, level + 2, smallest_ukey, largest_ukey)
            if total_file_size(overlaps) > max_grandparent_overlap:
                break
        level += 1
    return level


def deeper_ranges(levels, output_level, begin_ukey=None, end_ukey=None):
    """User-key spans of every file below `output_level`: where older data may
    still hide, so a deletion marker for a key inside one must be kept.

    Spans that overlap are merged (this loses nothing: a key is inside the
    union exactly when it is inside one of them); only spans meeting
    [begin_ukey, end_ukey] are kept, to keep the job message small."""
    spans = []
    for level in range(output_level + 1, NUM_LEVELS):
        for f in overlapping_files(levels, level, begin_ukey, end_ukey):
            spans.append((f.smallest[:-8], f.largest[:-8]))
    spans.sort()
    merged = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


MAX_SUBCOMPACTIONS = 8


def subcompaction_bounds(plan, workers, max_file_size):
    """[(lower, upper)] user-key bounds that split a large level-0 compaction
    into pieces for up to `workers` compactors to run in parallel (None: open
    end); the pieces commit as one edit. Split points are file boundaries
    of the inputs, chosen to balance bytes. One piece, [(None, None)], for
    any other plan."""
    pieces = min(workers, MAX_SUBCOMPACTIONS)
    total = total_file_size(plan.inputs) + total_file_size(plan.next_inputs)
    if plan.level != 0 or pieces < 2 or total < 4 * max_file_size:
        return [(None, None)]
    points = sorted({_smallest_ukey(f) for f in plan.next_inputs} | {_smallest_ukey(f) for f in plan.inputs})
    points = points[1:]
    if not points:
        return [(None, None)]
    step = len(points) / pieces
    cuts = sorted({points[int(i * step)] for i in range(1, pieces) if int(i * step) < len(points)})
    bounds = []
    lower = None
    for cut in cuts:
        bounds.append((lower, cut))
        lower = cut
    bounds.append((lower, None))
    return bounds
