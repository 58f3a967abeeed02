"""Comparators for tests of custom key order, at module level so that
compactor processes and plyvel import or call the same functions."""


def reverse_bytewise(a: bytes, b: bytes) -> int:
    return (a < b) - (a > b)


REVERSE_NAME = b"lsm.test.ReverseBytewise"
