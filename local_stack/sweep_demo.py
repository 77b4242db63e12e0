"""The sweep on the local stack: SweepFunction invoked in-process, as its EventBridge schedule would (SPEC §3b).

`make demo` calls `run_sweep` after the webhook scenarios: every broken grant or account the simulator
holds whose failure is not in the history yet (MISSED_WEBHOOK in local_stack/scenarios.py) is enqueued,
and the running queue pollers diagnose it like any webhook's failure.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from account_doctor.models import from_epoch
from local_stack.payloads import ACCOUNT, REGION, SAMPLE_TIME

if TYPE_CHECKING:
    from local_stack.stack import RunningStack

SWEEP_FUNCTION = "SweepFunction"
SAMPLE_EVENT_ID = "5e0c2b7a-3f4d-4b8e-9c1a-6d7e8f901234"


def scheduled_event(*, at: float = SAMPLE_TIME, event_id: str = SAMPLE_EVENT_ID) -> dict[str, Any]:
    """The event an EventBridge schedule rule delivers to its Lambda target (events/sweep-scheduled.json)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": from_epoch(at),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/account-doctor-SweepSchedule"],
        "detail": {},
    }


def run_sweep(stack: RunningStack) -> dict[str, Any]:
    """One sweep run against the running stack; its summary: listed, already_known, enqueued, too_old_to_notify, …"""
    summary: dict[str, Any] = stack.functions[SWEEP_FUNCTION].invoke(
        scheduled_event(at=time.time(), event_id=str(uuid.uuid4()))
    )
    return summary
