"""Message ids stay unique across processes, forks and restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings

from smsgw.ids import new_id


def test_ids_are_uuids_unique_within_a_process():
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(value)) == value for value in ids[:100])


def test_other_processes_and_forked_children_draw_other_prefixes():
    code = "from smsgw.ids import new_id; print(new_id())"
    others = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
              for _ in range(3)}
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about fork() beside threads; the child only writes
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: write one id and leave at once
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    prefixes = {value[:18] for value in others | {child, new_id()}}
    assert len(prefixes) == 5
