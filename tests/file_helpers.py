"""Shared by the damage tests: damage to a file on disk, in place."""


def flip_byte(path, offset, mask=0x80):
    """XOR the byte at offset with mask (flipping it again undoes it)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))
