"""events/sqs-*.json and api-*.json are what `python -m local_stack.sample_sqs_events` writes today.

(The webhook events have the same check in test_webhook_handler.py.)
"""

from __future__ import annotations

from pathlib import Path

from local_stack.sample_sqs_events import write
from tests.conftest import EVENTS_DIR


def test_committed_queue_and_read_api_events_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = write(tmp_path)
    committed = sorted(p.name for p in (*EVENTS_DIR.glob("sqs-*.json"), *EVENTS_DIR.glob("api-*.json")))
    assert sorted(p.name for p in written) == committed
    for path in written:
        assert path.read_text(encoding="utf-8") == (EVENTS_DIR / path.name).read_text(encoding="utf-8"), path.name
