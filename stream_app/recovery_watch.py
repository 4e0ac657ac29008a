"""Un-stall a table recovery that stopped receiving changelog records.

faust-streaming 0.15.3 can leave a worker in table recovery indefinitely after a rebalance:
the two-worker rebalance test (tests/kafka/test_stream_worker.py) saw the remaining worker,
taking over its peer's partitions, log "No event received for active tp <changelog
partition> since recovery start" for minutes — in 2 of ~200 runs on a loaded 2-core machine in
November 2026 — while the records it waited for were on the broker (below the highwater it had
read). Recovery then never ends, so the agent never gets another event. The exact cause
inside Faust's fetch path was not pinned down (a state dump showed the changelog partitions
active, the flow running and the changelog queue empty, i.e. records were not being
delivered); this watchdog makes the stall recoverable whatever its cause:

- every ``CHECK_EVERY_S``, while a recovery runs, a changelog partition that still has records
  to read and has delivered none for ``STALL_S`` is *stalled*;
- it is sought again to the offset recovery has reached (what Faust's recovery itself does
  at its start; records already applied are skipped by recovery's offset check), resumed,
  and the consumer's fetch loop is released if it is blocked handing over one message (it
  waits on that hand-over *or* the consumer's ``suspend_flow`` event, which is pulsed).

A healthy recovery receives records within milliseconds, so this never acts on one.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import Any

log = logging.getLogger(__name__)

#: Seconds without a changelog record, with records left to read, before a partition counts
#: as stalled (a healthy recovery gets its first records within milliseconds).
STALL_S = 20.0
CHECK_EVERY_S = 5.0


def stalled_partitions(recovery: Any, now: float, stall_s: float = STALL_S) -> dict[Any, int]:
    """Active changelog partitions with records left and none received for ``stall_s``,
    with the offset to read them from again (Faust's ``-1`` = from the start)."""
    started = getattr(recovery, "_recovery_started_at", None)
    if not recovery.in_recovery or started is None:
        return {}
    received = recovery._active_events_received_at
    out = {}
    for tp, left in recovery.active_remaining().items():
        last = max(received.get(tp) or started, started)
        if left > 0 and now - last >= stall_s:
            out[tp] = max(recovery.active_offsets[tp], 0)
    return out


class RecoveryWatch:
    def __init__(self, app: Any, stall_s: float = STALL_S):
        self.app = app
        self.stall_s = stall_s
        self.kicks = 0  # how often a stalled recovery was restarted (for tests and /metrics)

    async def check(self) -> bool:
        """Restart the reading of stalled changelog partitions; True if any were."""
        recovery = self.app.tables.recovery
        stalled = stalled_partitions(recovery, monotonic(), self.stall_s)
        if not stalled:
            return False
        consumer = self.app.consumer
        log.warning("table recovery stalled (no changelog record for %.0f s with records left) "
                    "on %s; seeking them again to %s", self.stall_s,
                    sorted(str(tp) for tp in stalled), {str(tp): off for tp, off in stalled.items()})
        await consumer.seek_wait(stalled)
        consumer.resume_partitions(set(stalled))
        # Release a fetch loop blocked handing one message over (it waits on the hand-over or
        # this event); the records after it come again from the offsets sought above.
        consumer.suspend_flow.set()
        await asyncio.sleep(0)
        consumer.suspend_flow.clear()
        for tp in stalled:  # the next check gives the new reads a full STALL_S
            recovery._active_events_received_at[tp] = monotonic()
        self.kicks += 1
        return True
