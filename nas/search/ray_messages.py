"""Ray's error messages to the driver, one short line each.

The raylet pushes errors to every driver (a worker process that died, a node out of memory), and
Ray prints them on the driver's stdout whatever ``log_to_driver`` says: a worker death is a
~500-character line of hex ids.  The search already records the trial that worker ran as
failed, with its error, so the user needs only what died and why.
"""
from __future__ import annotations

import re
from typing import Any, Callable

_WORKER_DIED = re.compile(
    r"A worker died or was killed.*?Worker PID: (?P<pid>\d+)"
    r"(?:.*?Worker exit type: (?P<kind>\S+))?(?:.*?Worker exit detail: (?P<detail>.*))?", re.S)
_DETAIL_CHARS = 160


def short_raylet_message(message: str) -> str:
    """A raylet message as one line; a worker death as its PID, exit type and the start of its reason."""
    died = _WORKER_DIED.search(message)
    if died is None:
        return " ".join(message.split())
    why = ", ".join(part for part in (died["kind"], _first_sentence(died["detail"] or "")) if part)
    return f"a Ray worker process died (PID {died['pid']}{': ' + why if why else ''})"


def shorten_raylet_messages() -> None:
    """Route Ray's printer of raylet errors through ``short_raylet_message``.

    Ray's error-listener thread looks ``ray._private.worker.print_to_stdstream`` up for every
    message, so wrapping that function is enough; this reaches into a private module, and if a
    Ray release renames it the messages are simply printed unshortened.
    """
    from ray._private import worker

    original: Callable[..., Any] | None = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "shortens_raylet_messages", False):
        return

    def printer(data: dict, *args: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and data.get("pid") == "raylet":
            data = {**data, "lines": [short_raylet_message(str(line)) for line in data.get("lines", [])]}
        return original(data, *args, **kwargs)

    printer.shortens_raylet_messages = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = printer


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    sentence = text if end < 0 else text[:end]
    return sentence if len(sentence) <= _DETAIL_CHARS else sentence[:_DETAIL_CHARS - 3] + "..."
