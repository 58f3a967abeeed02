"""plyvel's iterator objects (Iterator, RawIterator) over the engine's DBIter.

Iterator reproduces plyvel's state machine call for call (BEFORE_START,
AFTER_STOP, IN_BETWEEN, IN_BETWEEN_ALREADY_POSITIONED), so bounds, reverse,
seek and prev behave exactly as they do over LevelDB.

Knows the engine's DBIter (lsm.writer.iterator) and lsm.errors; no files.
"""
import weakref
from bisect import bisect_left

from .errors import IteratorInvalidError
from .writer.iterator import DBIter

BEFORE_START, AFTER_STOP, IN_BETWEEN, IN_BETWEEN_ALREADY_POSITIONED, CLOSED = range(5)


def bytes_increment(s: bytes):
    """Smallest key greater than every key starting with s (None: no bound)."""
    b = bytearray(s)
    for i in range(len(b) - 1, -1, -1):
        if b[i] != 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return None


def _check_bytes(name, value):
    if value is not None and not isinstance(value, bytes):
        raise TypeError(f"'{name}' must be bytes or None, not {type(value).__name__}")


class _Pinned:
    """Pins a version and a sequence in the engine until closed or collected."""

    def __init__(self, db, sequence, fill_cache=None):
        engine = db._engine
        view, version, seq = engine.new_view(sequence, fill_cache)
        self._db = db
        self._engine = engine
        self.view = view
        # Collected unclosed: released without waiting for the engine's lock
        # (the collector may run inside it); closed: released at once.
        self._finalizer = weakref.finalize(self, engine.release_soon, version, seq)
        db._register_iterator(self)

    def _close_pin(self):
        pinned = self._finalizer.detach()
        if pinned is not None:
            self._engine.release_view(*pinned[2])
        self.view = None

    def close(self):
        if self._it is not None:
            self._it = None
            self._on_close()
            self._close_pin()

    def _on_close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _live(self):
        it = self._it
        if it is None or self._db._engine is None:
            raise RuntimeError("Database or iterator is closed")
        return it


class Iterator(_Pinned):
    def __init__(self, db, db_prefix, reverse, start, stop, include_start, include_stop, prefix,
                 include_key, include_value, sequence, fill_cache=None):
        for name, value in (("start", start), ("stop", stop), ("prefix", prefix)):
            _check_bytes(name, value)
        if db_prefix is not None:
            if prefix is not None:
                prefix = db_prefix + prefix
            else:
                if start is None:
                    start, include_start = db_prefix, True
                else:
                    start = db_prefix + start
                if stop is None:
                    stop, include_stop = bytes_increment(db_prefix), False
                else:
                    stop = db_prefix + stop
        if prefix is not None:
            if start is not None or stop is not None:
                raise TypeError("'prefix' cannot be used together with 'start' or 'stop'")
            start, stop = prefix, bytes_increment(prefix)
            include_start, include_stop = True, False
        self._start, self._stop = start, stop
        self._include_start, self._include_stop = bool(include_start), bool(include_stop)
        self._include_key, self._include_value = bool(include_key), bool(include_value)
        self._db_prefix = db_prefix
        self._prefix_len = len(db_prefix) if db_prefix else 0
        self._reverse = bool(reverse)
        super().__init__(db, sequence, fill_cache)
        ordered = self.view.ordered
        if ordered is not None:
            # A custom comparator's database: the bounds compare by it, against
            # each other and a seek's target too, as plyvel compares them.
            self._start = None if start is None else ordered(start)
            self._stop = None if stop is None else ordered(stop)
        self._it = DBIter(self.view)
        self._state = AFTER_STOP if self._reverse else BEFORE_START
        self._plain = self._include_key and self._include_value and not self._prefix_len
        self._bounds_chunk = None
        self._low = self._high = 0
        # A plain forward iteration hands out the rest of the current chunk
        # (up to the stop bound) through a list iterator: each __next__ is
        # then one step of it, and the chunk position is worked out from
        # what it has left only when a slower path needs it (_end_run).
        self._run = None

    def _on_close(self):
        self._run = None
        self._state = CLOSED  # keeps __next__ off its fast paths

    def _end_run(self):
        """Bring the chunk position up to the entries the run handed out."""
        run = self._run
        if run is not None:
            self._run = None
            self._it.pos = self._high - 1 - run.__length_hint__()

    def __iter__(self):
        return self

    def _current(self):
        return self._shape(self._it.chunk[self._it.pos])

    def __next__(self):
        run = self._run
        if run is not None:
            for entry in run:
                return entry
            self._end_run()
        # Fast path: the next entry is already in the current chunk and
        # inside the bounds, so no state changes beyond the position.
        if self._state == IN_BETWEEN:
            it = self._it
            chunk = it.chunk
            if self._reverse:
                pos = it.pos
                if chunk is self._bounds_chunk and pos - 1 >= self._low:
                    it.pos = pos - 1
                    return chunk[pos] if self._plain else self._shape(chunk[pos])
                return self._real_prev()
            pos = it.pos + 1
            if chunk is self._bounds_chunk and pos < self._high:
                it.pos = pos
                return chunk[pos] if self._plain else self._shape(chunk[pos])
            result = self._real_next()
            self._compute_bounds()
            return result
        result = self._real_prev() if self._reverse else self._real_next()
        self._compute_bounds()
        return result

    def prev(self):
        self._end_run()
        result = self._real_next() if self._reverse else self._real_prev()
        self._compute_bounds()
        return result

    def _compute_bounds(self):
        """Indexes of the current chunk inside [start, stop], for the fast path."""
        it = self._it
        if it is None:
            return
        chunk = it.chunk
        self._bounds_chunk = chunk
        high = len(chunk)
        if self._stop is not None and chunk and chunk[-1][0] >= self._stop:
            high = bisect_left(chunk, (self._stop,))
            if self._include_stop and high < len(chunk) and chunk[high][0] == self._stop:
                high += 1
        low = 0
        if self._start is not None and chunk and chunk[0][0] <= self._start:
            low = bisect_left(chunk, (self._start,))
            if low < len(chunk) and chunk[low][0] == self._start and not self._include_start:
                low += 1
        self._high = high
        self._low = low
        if self._plain and not self._reverse and self._state == IN_BETWEEN and it.pos + 1 < high:
            self._run = iter(chunk[it.pos + 1:high])

    def _shape(self, entry):
        key, value = entry
        if self._include_key:
            if self._prefix_len:
                key = key[self._prefix_len:]
            if self._include_value:
                return key, value
            return key
        if self._include_value:
            return value
        return None

    def _real_next(self):
        it = self._live()
        state = self._state
        if state == IN_BETWEEN:
            it.next()
            if not it.valid():
                self._state = AFTER_STOP
                raise StopIteration
        elif state == IN_BETWEEN_ALREADY_POSITIONED:
            self._state = IN_BETWEEN
        elif state == BEFORE_START:
            if self._start is None:
                it.seek_to_first()
            else:
                it.seek(self._start)
            if not it.valid():
                raise StopIteration
            if self._start is not None and not self._include_start and it.key() == self._start:
                it.next()
                if not it.valid():
                    raise StopIteration
            self._state = IN_BETWEEN
        else:
            raise StopIteration
        if self._stop is not None:
            key = it.key()
            if key > self._stop or (key == self._stop and not self._include_stop):
                self._state = AFTER_STOP
                raise StopIteration
        return self._current()

    def _real_prev(self):
        it = self._live()
        state = self._state
        if state == IN_BETWEEN:
            pass
        elif state == IN_BETWEEN_ALREADY_POSITIONED:
            it.prev()
            if not it.valid():
                self._state = BEFORE_START
                raise StopIteration
        elif state == BEFORE_START:
            raise StopIteration
        else:
            stop = self._stop
            if stop is None:
                it.seek_to_last()
            else:
                it.seek(stop)
                if it.valid():
                    if not self._include_stop:
                        it.prev()
                else:
                    it.seek_to_last()
                if it.valid() and it.key() > stop:
                    it.prev()
            if not it.valid():
                raise StopIteration
            if self._start is not None and self._start >= it.key():
                # plyvel compares start >= key here, so an inclusive start
                # equal to the last key yields nothing in reverse; kept for
                # call-for-call compatibility.
                raise StopIteration
        out = self._current()
        it.prev()
        if not it.valid():
            self._state = BEFORE_START
        elif self._start is None:
            self._state = IN_BETWEEN
        else:
            key = it.key()
            if key > self._start or (key == self._start and self._include_start):
                self._state = IN_BETWEEN
            else:
                self._state = BEFORE_START
        return out

    def seek_to_start(self):
        self._live()
        self._end_run()
        self._state = BEFORE_START

    def seek_to_stop(self):
        self._live()
        self._end_run()
        self._state = AFTER_STOP

    def seek(self, target):
        if not isinstance(target, bytes):
            raise TypeError(f"'target' must be bytes, not {type(target).__name__}")
        it = self._live()
        self._end_run()
        if self._prefix_len:
            target = self._db_prefix + target
        if self._start is not None and target < self._start:
            target = self._start
        if self._stop is not None and target > self._stop:
            target = self._stop
        it.seek(target)
        if not it.valid():
            self._state = AFTER_STOP
            return
        self._state = IN_BETWEEN_ALREADY_POSITIONED
        self._bounds_chunk = None


class RawIterator(_Pinned):
    """LevelDB's own iterator interface (plyvel's raw_iterator)."""

    def __init__(self, db, db_prefix, sequence, fill_cache=None):
        super().__init__(db, sequence, fill_cache)
        self._it = DBIter(self.view)
        self._prefix = db_prefix or b""


    def _in_prefix(self):
        it = self._it
        return it.valid() and it.key().startswith(self._prefix)

    def valid(self):
        self._live()
        return self._in_prefix()

    def seek_to_first(self):
        it = self._live()
        if self._prefix:
            it.seek(self._prefix)
        else:
            it.seek_to_first()

    def seek_to_last(self):
        it = self._live()
        end = bytes_increment(self._prefix) if self._prefix else None
        if end is None:
            it.seek_to_last()
        else:
            it.seek(end)
            if it.valid():
                it.prev()
            else:
                it.seek_to_last()

    def seek(self, target):
        if not isinstance(target, bytes):
            raise TypeError(f"'target' must be bytes, not {type(target).__name__}")
        self._live().seek(self._prefix + target)

    def _require_valid(self):
        self._live()
        if not self._in_prefix():
            raise IteratorInvalidError("iterator is not positioned on an entry")
        return self._it

    def next(self):
        self._require_valid().next()

    def prev(self):
        self._require_valid().prev()

    def key(self):
        return self._require_valid().key()[len(self._prefix):]

    def value(self):
        return self._require_valid().value()

    def item(self):
        it = self._require_valid()
        return it.key()[len(self._prefix):], it.value()
