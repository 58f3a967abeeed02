"""Output tables of one job: where to cut, and writing them into the staging
directory. Knows the staging directory only; never the database directory.

Rows come in sorted ``(user_key, -tag, value)`` (see merge.py). A new table is
started before a new user key when the current one has reached
max_file_size, or when it already overlaps more than max_grandparent_overlap
bytes of grandparent (level + 2) files -- LevelDB's ShouldStopBefore: a table
that overlaps many grandparents makes its own next compaction expensive.
Unlike LevelDB, a cut never falls between two versions of one user key, so an
output table never shares a user key with its neighbour.
"""
import os
import struct

from ..keys import sort_key
from ..table import TableBuilder
from .job import OutputTable

_pack_tag = struct.Struct("<Q").pack


def output_name(index: int) -> str:
    return f"out-{index:06d}.ldb"


class _Grandparents:
    """Grandparent bytes overlapped by the current output, as ShouldStopBefore
    counts them: each grandparent passed after the first key adds its size."""

    __slots__ = ("_ukeys", "_keys", "_sizes", "_i", "_seen", "_overlap", "_limit", "next_ukey")

    def __init__(self, grandparents, limit):
        gps = sorted(grandparents, key=lambda f: sort_key(f.largest))
        self._keys = [sort_key(f.largest) for f in gps]
        self._sizes = [f.size for f in gps]
        self._i = 0
        self._seen = False
        self._overlap = 0
        self._limit = limit
        # User keys below this cannot pass a grandparent: the caller's fast path.
        self.next_ukey = self._keys[0][0] if self._keys else None

    def should_stop_before(self, ukey, nt) -> bool:
        keys = self._keys
        i = self._i
        key = (ukey, nt)
        while i < len(keys) and key > keys[i]:
            if self._seen:
                self._overlap += self._sizes[i]
            i += 1
        self._i = i
        self.next_ukey = keys[i][0] if i < len(keys) else None
        self._seen = True
        if self._overlap > self._limit:
            self._overlap = 0
            return True
        return False


class OutputSet:
    """The tables one job writes, named out-000001.ldb, out-000002.ldb, ...

    Each table is fsynced when finished; the caller syncs the directory once
    all are written. abandon() removes everything this set created."""

    def __init__(
        self,
        fs,
        staging_dir,
        table_options,
        max_file_size=None,
        grandparents=(),
        max_grandparent_overlap=None,
    ):
        self._fs = fs
        self._dir = staging_dir
        self._options = table_options
        self._max_size = max_file_size if max_file_size is not None else float("inf")
        self._gp = _Grandparents(grandparents, max_grandparent_overlap) if grandparents else None
        self._file = None
        self._builder = None
        self._name = None
        self._last_ukey = None
        self.outputs: list[OutputTable] = []
        self.created: list[str] = []  # every name created, finished or not

    @property
    def bytes_written(self) -> int:
        return sum(o.size for o in self.outputs)

    def _open(self):
        name = output_name(len(self.created) + 1)
        path = os.path.join(self._dir, name)
        f = self._fs.create(path, exclusive=True)
        self.created.append(name)
        self._file = f
        self._name = name
        self._builder = TableBuilder(self._options, f.append)

    def _close_current(self):
        builder, f = self._builder, self._file
        self._builder = self._file = None
        size = builder.finish()
        f.sync()
        f.close()
        self.outputs.append(
            OutputTable(
                name=self._name,
                size=size,
                smallest=builder.smallest,
                largest=builder.largest,
                entries=builder.num_entries,
            )
        )

    def add(self, rows) -> None:
        """Append sorted rows (all after any row added before)."""
        if not rows:
            return
        if self._builder is None:
            self._open()
        builder = self._builder
        add = builder.add
        pack = _pack_tag
        max_size = self._max_size
        gp = self._gp
        gp_next = gp.next_ukey if gp is not None else None
        last_ukey = self._last_ukey
        if gp is not None and not self.outputs and builder.num_entries == 0:
            # The job's first key: grandparents wholly before it never count.
            gp.should_stop_before(rows[0][0], rows[0][1])
            gp_next = gp.next_ukey
        for ukey, nt, value in rows:
            if ukey != last_ukey:
                last_ukey = ukey
                # Only at a user-key boundary: versions of one key stay together.
                cut = builder.file_size >= max_size
                if gp_next is not None and ukey >= gp_next:
                    cut = gp.should_stop_before(ukey, nt) or cut
                    gp_next = gp.next_ukey
                if cut and builder.num_entries:
                    self._close_current()
                    self._open()
                    builder = self._builder
                    add = builder.add
            add(ukey + pack(-nt), value)
        self._last_ukey = last_ukey

    def finish(self) -> list[OutputTable]:
        if self._builder is not None:
            self._close_current()
        return self.outputs

    def abandon(self) -> list[str]:
        """Close and remove every file this set created; return the names that
        could not be removed (the writer must delete those)."""
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
            self._file = self._builder = None
        left = []
        for name in self.created:
            try:
                self._fs.remove(os.path.join(self._dir, name))
            except Exception:  # noqa: BLE001
                left.append(name)
        self.outputs = []
        return left

