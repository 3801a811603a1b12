"""brushwork.utils.reuse_freed_memory, checked in fresh interpreters (malloc state is per process)."""

import json
import resource
import subprocess
import sys

import pytest

from brushwork.utils import _glibc

PAGES = (64 << 20) // resource.getpagesize()  # pages in one 64 MiB block

PROBE = r"""
import ctypes, json, resource, sys
from brushwork.utils import _glibc, reuse_freed_memory

BIG = 64 << 20  # bytes: above glibc's largest default mmap threshold (32 MiB)
libc = _glibc()
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def faults(rounds=4, together=1):
    # minor page faults while `together` 64 MiB blocks are malloc'ed, written and freed `rounds` times
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        blocks = [libc.malloc(BIG) for _ in range(together)]
        for block in blocks:
            ctypes.memset(block, 1, BIG)
        for block in blocks:
            libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() >> 20

out = {"fresh": faults()}
with reuse_freed_memory(enabled=sys.argv[1] == "on"):
    faults(1, together=4)  # the first round grows the heap
    out["inside"] = faults()
    out["resident_inside"] = resident_mib()
out["resident_after"] = resident_mib()
print(json.dumps(out))
"""


def _probe(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(_glibc() is None, reason="heap reuse is a glibc (Linux) feature")
def test_reuse_freed_memory_stops_page_faults_and_returns_memory_after():
    out = _probe("on")
    assert out["fresh"] > 3 * PAGES  # by default every round maps fresh, zero-filled pages
    assert out["inside"] < PAGES / 4  # inside, the heap's freed blocks are reused
    assert out["resident_inside"] - out["resident_after"] > 128  # MiB handed back on exit


@pytest.mark.skipif(_glibc() is None, reason="heap reuse is a glibc (Linux) feature")
def test_reuse_freed_memory_disabled_changes_nothing():
    out = _probe("off")  # what gatys() does on a GPU
    assert out["inside"] > 3 * PAGES
