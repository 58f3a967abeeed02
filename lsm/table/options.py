"""How a table is laid out: block size, restarts, compression, filter bits.

Pure data: the settings the table builder takes, shared by every writer of tables.
"""
from dataclasses import dataclass


@dataclass
class TableOptions:
    block_size: int = 4096
    block_restart_interval: int = 16  # with prefix_compression; without, every entry is a restart point
    compression: str | None = "snappy"  # 'snappy' or None
    bloom_bits_per_key: int = 10  # 0: no filter block
    # LevelDB stores each key as the bytes it does not share with the one
    # before. Without that, a block of keys of one length and values of one
    # length is uniform (lsm.table.block) and decodes several times faster. Cost:
    # more disk for keys that share long prefixes with their neighbours (a few
    # percent with snappy; docs/measurements.md). RocksDB: use_delta_encoding.
    prefix_compression: bool = False
    # With a filter, a second filter block of lsm's own beside LevelDB's
    # (lsm.table.keyfilter): a get probes it with a hash computed in C, once
    # for every table. LevelDB ignores it. Cost: bloom_bits_per_key / 8 bytes
    # a key. Off, with prefix_compression, a table is byte for byte LevelDB's.
    lsm_filter: bool = True
