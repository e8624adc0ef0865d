"""Open-file descriptors of `smsgw serve`: the soft limit raised at start, and how many client
connections the listener may hold below it (the rest kept for the store, the MT sends, the logs
and the event loop).
"""

from __future__ import annotations

import resource

FD_RESERVE = 128          # descriptors kept for the store, the MT sends, the logs and the loop


def raise_open_file_limit() -> int:
    """Raise the soft limit of open files to the hard one; the soft limit now (-1: unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return -1 if soft == resource.RLIM_INFINITY else soft


def connection_cap(configured: int, file_limit: int) -> int:
    """`max_connections`, lowered to the open-file limit less `FD_RESERVE` (a quarter of small limits)."""
    if file_limit < 0:
        return configured
    return max(1, min(configured, file_limit - min(FD_RESERVE, file_limit // 4)))
