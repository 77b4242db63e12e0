"""Counts taken on a batch's worker threads, published as EMF metrics once per invocation on the main thread.

Powertools `Metrics.add_metric` mutates one metric set shared by every instance, without a lock,
and an EMF blob has one dimension set for all its metrics. So the record threads only count here
(under a lock), and the handler publishes each (metric, dimension value) pair as one aggregated
`single_metric` after the batch: "Verdicts" by cause, "EmailsSent" by kind, and so on.
"""

from __future__ import annotations

import threading
from collections import Counter

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# (metric name, dimension name, dimension value); an empty dimension name means none.
Key = tuple[str, str, str]


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[Key] = Counter()

    def count(self, metric: str, dimension: str = "", value: str = "") -> None:
        with self._lock:
            self._counts[(metric, dimension, value)] += 1

    def drain(self) -> dict[Key, int]:
        """What was counted since the last drain, and a fresh start."""
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts

    def publish(self, metrics: Metrics) -> dict[Key, int]:
        """Drains the tally into metrics: dimensionless counts join `metrics`' own blob, the others
        one blob each (with `metrics`' service dimension). Call it on the handler's thread only."""
        counts = self.drain()
        service = {"service": str(metrics.service)} if metrics.service else {}
        for (name, dimension, value), total in sorted(counts.items()):
            if not dimension:
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=total)
                continue
            with single_metric(name=name, unit=MetricUnit.Count, value=total, default_dimensions=service) as metric:
                metric.add_dimension(name=dimension, value=value)
        return counts


# One per process, like Powertools' Metrics: the notifier and the service count, the handler publishes.
tally = Tally()
