"""The program's side of a cancelled deployment: a clear line, not a Python traceback.

Why: on ^C the engine cancels its context, and the program's pending RegisterResource calls
fail with gRPC status CANCELLED ("context canceled"). The Pulumi SDK (3.272.0,
`pulumi/runtime/settings.py` `grpc_error_to_exception`) turns UNAVAILABLE into a quiet
`RunError` ("Resource monitor has terminated") but CANCELLED into a bare `Exception`, which
`pulumi-language-python-exec` prints as "Program failed with an unhandled exception" with a
traceback, in the middle of an otherwise clean cancellation. `quiet_cancellation()` maps
CANCELLED to a `RunError` the same way; every other status is left to the SDK.
"""

from __future__ import annotations

from typing import Any

CANCELLED_MESSAGE = "the engine cancelled the deployment (interrupted); nothing else to do"


def quiet_cancellation() -> None:
    """Report a CANCELLED resource-monitor call as a `RunError` (no traceback)."""
    import grpc
    import pulumi
    from pulumi.runtime import settings

    original = settings.grpc_error_to_exception
    if getattr(original, "_coco_cancellation", False):
        return

    def grpc_error_to_exception(exn: Any) -> Exception:
        if exn.code() == grpc.StatusCode.CANCELLED:
            return pulumi.RunError(CANCELLED_MESSAGE)
        result: Exception = original(exn)
        return result

    grpc_error_to_exception._coco_cancellation = True  # type: ignore[attr-defined]
    settings.grpc_error_to_exception = grpc_error_to_exception
