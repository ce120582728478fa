"""A stop that a library swallowed, noticed by the loop that would otherwise run on.

On Python 3.11 ``asyncio.wait_for`` loses a cancellation that arrives in the same
loop iteration as the result it waits for (CPython issue 86296, fixed in 3.12): it
returns the result, or raises the awaited call's own error, and the cancel is gone.
pymodbus (every reply, the connect), aiomqtt (connect, publish, subscribe) and
asyncua (the socket's connect) wait with it. A ``*_forever`` loop that lost its
stop that way backs off and reconnects, or waits for work, until SIGKILL.

The task still counts the cancel it was sent (``Task.cancelling()``; only
``uncancel()`` takes it back, and only ``asyncio.timeout`` and ``TaskGroup`` call
that, for cancels of their own). So each such loop asks after every library call
that may have eaten one, and ends with ``CancelledError`` when it did. Our own code
waits with ``asyncio.timeout``, which keeps the cancel.
"""

from __future__ import annotations

import asyncio


def cancel_was_swallowed() -> bool:
    """True when the current task was cancelled and no ``CancelledError`` reached it.

    Call it where the loop would go on (back off, reconnect, wait for work) and
    ``raise asyncio.CancelledError`` when it says so.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
