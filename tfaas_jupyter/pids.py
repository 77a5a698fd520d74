"""Whether a process is alive, for the server side (repository recovery) and the
client side (discovery's runtime files) alike: plain Python, no third-party import."""

from __future__ import annotations

import os


def pid_alive(pid: object, *, ours: bool = False) -> bool:
    """Whether a process with this pid exists (signal 0: checked, nothing sent).

    With ``ours``, only a process of this user counts: another user's refuses the
    signal (a runtime file naming it is not to be trusted). Without it, another user's
    live process counts as alive (its files are not to be removed).
    """
    try:
        number = int(pid)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    if number <= 0:
        return False
    try:
        os.kill(number, 0)
    except PermissionError:
        return not ours
    except OSError:
        return False
    return True
