"""Waiting for ARM long-running operations within the command's one deadline.

azure-cli's ``LongRunningOperation`` (``poller.result()``) waits without a bound; here the poller's own
thread keeps polling while this waits at most until the deadline, showing the operation's status. On expiry
the command stops with what it did, what still runs in Azure, and the command that resumes; the operation
itself goes on in Azure (the poller thread is a daemon).
"""
from __future__ import annotations

from typing import Any

from azext_virtualnode.context import Ctx, Timeout, Waiting

TICK = 1.0


def timeout_error(ctx: Ctx, headline: str, running: str | None, resume: str) -> Timeout:
    lines = [headline]
    if ctx.done:
        lines.append("Done so far: " + "; ".join(ctx.done) + ".")
    if running:
        lines.append(f"Still running in Azure: {running}.")
    lines.append(f"Resume with '{resume}' (raise --timeout to wait longer).")
    return Timeout("\n".join(lines))


def wait_operation(ctx: Ctx, poller: Any, what: str, resume: str) -> Any:
    """The poller's result once its operation ends; Timeout (exit 1) when the command's deadline passes first."""
    if poller.done():
        return poller.result()
    with Waiting(ctx, what) as waiting:
        while True:
            remaining = ctx.deadline.remaining()
            if remaining <= 0:
                seconds = ctx.deadline.seconds
                raise timeout_error(ctx, f"Timed out after {seconds:.0f}s while waiting: {what}.", what, resume)
            poller.wait(timeout=min(TICK, remaining))
            if poller.done():
                return poller.result()
            waiting.set(f"{what}: {poller.status()}")


def timeout_report(ctx: Ctx, lines: list[str], problems: list[dict[str, Any]]) -> Timeout:
    """A wait's Timeout: ``lines`` (what was seen), the problems ``status`` finds with their hints, what this
    command already did, and how to look again."""
    for p in problems:
        lines.append(f"  [{p['code']}] {p['message']}\n      -> {p['hint']}")
    if ctx.done:
        lines.append("Done by this command: " + "; ".join(ctx.done) + ".")
    lines.append(f"Re-run 'az aks virtual-node status {ctx.ids}' to check again, or wait on with 'az aks "
                 f"virtual-node wait {ctx.ids} --ready'.")
    return Timeout("\n".join(lines))
