"""Keys of any lengths as columns of little-endian 32-bit words, for hashes
that numpy computes over many keys at once: word j of every key that has a
word j, in one array. Pure: no files; the mechanism under the filters'
vectorised hashes (filter.py, keyfilter.py), which say how words are mixed.
"""

# RaggedKeys.columns gathers the words of this many numpy steps at once.
SLAB_WORDS = 1 << 16


class RaggedKeys:
    """`keys` (bytes), of which all but the last `skip` bytes are hashed.
    The keys are sorted longest first (`order`): those that have a word j are
    a prefix of them. Every array here is in that order; in_key_order puts
    results back in the order of `keys`."""

    __slots__ = ("joined", "words", "order", "lengths", "word_counts", "at", "done")

    def __init__(self, keys, skip: int, lengths=None):
        import numpy as np
        count = len(keys)
        if lengths is None:
            lengths = np.fromiter(map(len, keys), dtype=np.int64, count=count)
        if count and int(lengths.min()) < skip:
            raise ValueError(f"keys of {int(lengths.min())} bytes are shorter than the {skip} bytes to skip")
        starts = np.zeros(count, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        # The padding lets the last key's tail be read as a word.
        self._lay_out(b"".join(keys) + b"\0\0\0", starts, lengths - skip)

    @classmethod
    def in_buffer(cls, data: bytes, starts, lengths):
        """The keys data[starts[i]:starts[i] + lengths[i]] (numpy int64
        arrays), read where they lie: at least 3 bytes of data must follow
        each key (in a table entry, its tag does)."""
        keys = cls.__new__(cls)
        keys._lay_out(data, starts, lengths)
        return keys

    def _lay_out(self, joined: bytes, starts, hashed) -> None:
        import numpy as np
        self.joined = joined
        # The little-endian uint32 at every byte offset: a view, nothing copied.
        self.words = np.ndarray((max(0, len(joined) - 3),), dtype="<u4", buffer=joined, strides=(1,))
        self.order = np.argsort(-(hashed >> 2), kind="stable")
        self.lengths = hashed[self.order]  # bytes hashed of each key
        self.word_counts = self.lengths >> 2
        self.at = starts[self.order]  # where each key's next word starts in `joined`
        self.done = 0  # words taken from every key that has that many

    def columns(self, few: int, limit=None):
        """(active, column) for each word index in turn, as long as at least
        `few` keys have a word there (and, given a limit, for the first
        `limit` word indexes at most): column holds that word of the first
        `active` keys (uint32). Words are gathered in slabs of many steps."""
        import numpy as np
        count = len(self.order)
        counts = self.word_counts
        # How many keys have more than `done` words changes where counts does.
        cuts = (np.flatnonzero(counts[1:] != counts[:-1]) + 1).tolist() + [count] if count else []
        for active in reversed(cuts):
            if active < few:
                return
            where = self.at[:active]
            end = int(counts[active - 1]) if limit is None else min(limit, int(counts[active - 1]))
            while self.done < end:
                span = min(end - self.done, max(1, SLAB_WORDS // active))
                for column in self.words[where + 4 * np.arange(span)[:, None]]:
                    yield active, column
                where += 4 * span
                self.done += span

    def rest(self) -> int:
        """How many keys (the first ones) still have words that columns()
        did not give."""
        import numpy as np
        return int(np.count_nonzero(self.word_counts > self.done))

    def remaining(self, i: int):
        """(byte offset in `joined`, whole words left) of key i."""
        return int(self.at[i]), int(self.word_counts[i]) - self.done

    def skip_words(self, first: int) -> None:
        """Count the words of the `first` keys as taken: their tails follow."""
        self.at[:first] += 4 * (self.word_counts[:first] - self.done)

    def tails(self, first: int = 0):
        """(indices, values): the keys from `first` on whose length is not a
        whole number of words, and their last 1-3 bytes as a little-endian
        number (uint32). Their words must all have been taken."""
        import numpy as np
        size = self.lengths & 3
        which = np.flatnonzero(size[first:]) + first
        mask = (np.uint32(1) << (8 * size[which]).astype(np.uint32)) - np.uint32(1)
        return which, self.words[self.at[which]] & mask

    def in_key_order(self, values):
        import numpy as np
        out = np.empty(len(values), dtype=values.dtype)
        out[self.order] = values
        return out
