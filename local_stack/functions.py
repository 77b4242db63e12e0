"""The stack's Lambda functions, loaded in-process from the code template.yaml points at, and invoked like Lambda.

Each function's module is imported once (a warm sandbox), after the local environment is set, so the
clients it builds at import time talk to the local endpoints. Invocations are serialized: Powertools keeps
per-process state (the metric set, the logger's keys) that one Lambda sandbox never shares between two
concurrent invocations, and neither must we.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_stack.payloads import FakeLambdaContext, load_module
from local_stack.template import TEMPLATE_PATH

ROOT = TEMPLATE_PATH.parent
Handler = Callable[[dict[str, Any], Any], Any]

# One sandbox at a time, across functions too: Powertools' metric set is shared by every Metrics instance.
_INVOCATION_LOCK = threading.Lock()


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str  # the template's resource path, e.g. /accounts/{account_id}

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        return re.compile(f"^{regex}$")


@dataclass
class LambdaFunction:
    logical_id: str
    code_dir: Path
    handler: str  # module.function, as in the template
    timeout_seconds: int
    routes: list[ApiRoute] = field(default_factory=list)
    _entry: Handler | None = None

    def load(self) -> Handler:
        if self._entry is None:
            module_name, function_name = self.handler.rsplit(".", 1)
            path = self.code_dir / f"{module_name}.py"
            if not path.exists():
                raise FileNotFoundError(f"{self.logical_id}: {path.relative_to(ROOT)} does not exist yet")
            module = load_module(path, f"local_stack_fn_{self.logical_id}")
            self._entry = getattr(module, function_name)
        return self._entry

    def invoke(self, event: dict[str, Any]) -> Any:
        with _INVOCATION_LOCK:  # the cold start too: two first requests must not import the module twice
            entry = self.load()
            return entry(event, FakeLambdaContext(self.logical_id, self.timeout_seconds))


def functions_from_template(template: dict[str, Any]) -> dict[str, LambdaFunction]:
    """Every AWS::Serverless::Function of the template, with its API routes."""
    default_timeout = int(template.get("Globals", {}).get("Function", {}).get("Timeout", 3))
    found: dict[str, LambdaFunction] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        routes = [
            ApiRoute(method=str(event["Properties"]["Method"]).upper(), path=str(event["Properties"]["Path"]))
            for event in properties.get("Events", {}).values()
            if event["Type"] == "Api"
        ]
        found[logical_id] = LambdaFunction(
            logical_id=logical_id,
            code_dir=ROOT / str(properties["CodeUri"]),
            handler=str(properties["Handler"]),
            timeout_seconds=int(properties.get("Timeout", default_timeout)),
            routes=routes,
        )
    return found
