"""The stack's Lambda functions, loaded in-process from the code template.yaml points at, and invoked like Lambda.

Each function's module is imported once (a warm sandbox), after the local environment is set, so the
clients it builds at import time talk to the local endpoints. Invocations are serialized: Powertools keeps
per-process state (the metric set, the logger's keys) that one Lambda sandbox never shares between two
concurrent invocations, and neither must we.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
            unique = f"local_stack_fn_{self.logical_id}"
            spec = importlib.util.spec_from_file_location(unique, path)
            assert spec
            assert spec.loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
            self._entry = getattr(module, function_name)
        return self._entry

    def invoke(self, event: dict[str, Any]) -> Any:
        with _INVOCATION_LOCK:  # the cold start too: two first requests must not import the module twice
            entry = self.load()
            return entry(event, LambdaContext(self.logical_id, self.timeout_seconds))


class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_seconds: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


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
