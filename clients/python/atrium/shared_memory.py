"""multiprocessing.shared_memory's names, not yet in atrium.

SharedMemory's buf is a memoryview straight into the memory: for atrium
that needs libatrium's public API to give the address of an array's data,
which it does not yet. Until it does, these raise AtriumError ENOKIND
rather than hand out memory that is not in the store.
"""
from ._errors import missing_kind

__all__ = ["SharedMemory", "ShareableList"]


def SharedMemory(name=None, create=False, size=0):
    raise missing_kind("shared memory (a data pointer in libatrium's API)",
                       "to come")


def ShareableList(sequence=None, *, name=None):
    raise missing_kind("shared memory (a data pointer in libatrium's API)",
                       "to come")
