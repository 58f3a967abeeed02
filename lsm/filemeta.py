"""FileMetaData: what a version knows of one table. Pure data."""
from dataclasses import dataclass, field


@dataclass(slots=True)
class FileMetaData:
    number: int
    size: int
    smallest: bytes  # internal key of the first entry
    largest: bytes  # internal key of the last entry
    allowed_seeks: int = field(default=0, compare=False)

    @property
    def smallest_user_key(self) -> bytes:
        return self.smallest[:-8]

    @property
    def largest_user_key(self) -> bytes:
        return self.largest[:-8]
