import ctypes
import resource

import pytest

from brushwork.utils import _glibc, reuse_freed_memory

BIG = 64 << 20  # bytes: above glibc's largest default mmap threshold (32 MiB)


def _page_faults_of_big_allocations(rounds: int = 4) -> int:
    """Minor page faults while a 64 MiB block is malloc'ed, written and freed ``rounds`` times."""
    libc = _glibc()
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        block = libc.malloc(BIG)
        ctypes.memset(block, 1, BIG)
        libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(_glibc() is None, reason="heap reuse is a glibc (Linux) feature")
def test_reuse_freed_memory_stops_page_faults_of_repeated_big_allocations():
    pages = BIG // resource.getpagesize()
    assert _page_faults_of_big_allocations() > 3 * pages  # each round maps fresh zeroed pages
    with reuse_freed_memory():
        _page_faults_of_big_allocations(1)  # the first one grows the heap
        assert _page_faults_of_big_allocations() < pages / 4  # later ones reuse it
    assert _page_faults_of_big_allocations() > 3 * pages  # defaults restored on exit


@pytest.mark.skipif(_glibc() is None, reason="heap reuse is a glibc (Linux) feature")
def test_reuse_freed_memory_disabled_changes_nothing():
    with reuse_freed_memory(enabled=False):  # what gatys() does on a GPU
        _page_faults_of_big_allocations(1)
        assert _page_faults_of_big_allocations() > 3 * BIG // resource.getpagesize()
