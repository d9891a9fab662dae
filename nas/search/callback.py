"""Tune's trial events, fed to the ``SearchRecorder`` in the driver process (the only Ray-facing part
of recording)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune

from nas.search.recorder import SearchRecorder


def describe_error(error: BaseException | str | None) -> str:
    """``Type: first line`` of the original exception (unwrapping Ray's task/actor error wrappers)."""
    if error is None:
        return "unknown error (Ray reported no exception)"
    if isinstance(error, str):  # Tune's error.txt: a traceback whose last "Type: ..." line names it
        lines = [line for line in error.strip().splitlines() if line.strip()]
        typed = [line for line in lines if ": " in line and not line.startswith(" ")]
        return (typed[-1] if typed else lines[-1] if lines else "unknown error").strip()
    while getattr(error, "cause", None) is not None and error.cause is not error:
        error = error.cause
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


class StoreCallback(tune.Callback):
    """Feeds Tune's trial events to a ``SearchRecorder`` (in the driver process)."""

    def __init__(self, recorder: SearchRecorder):
        self.recorder = recorder

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config into the experiment dir for its own restore, which this
        # project does not use (``--resume`` rebuilds from the store); the live store stays out.
        return {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.recorder.trial_started(trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.recorder.trial_result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        checkpoint = trial.checkpoint
        if checkpoint is None:
            self.recorder.trial_completed(trial.trial_id, None)
            return
        with checkpoint.as_directory() as directory:
            self.recorder.trial_completed(trial.trial_id, directory)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.recorder.trial_failed(trial.trial_id, trial.config, describe_error(_trial_error(trial)))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.recorder.heartbeat()


class RecorderStopper(tune.Stopper):
    """Ends the whole Tune run once the recorder says the search must stop (a failure streak, a
    lost lease); trials in flight are then recorded interrupted by ``SearchRecorder.finish``."""

    def __init__(self, recorder: SearchRecorder):
        self.recorder = recorder

    def __getstate__(self) -> dict[str, Any]:
        return {}  # see StoreCallback.__getstate__

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        recorder = getattr(self, "recorder", None)
        return recorder is not None and recorder.stop_reason is not None


def _trial_error(trial: Any) -> BaseException | str | None:
    """The exception a trial raised: Tune's pickled copy if it has one, else its error text."""
    from ray import cloudpickle

    for path, load in ((trial.pickled_error_file, lambda f: cloudpickle.load(f)),
                       (trial.error_file, lambda f: f.read().decode(errors="replace"))):
        if path and Path(path).is_file():
            try:
                with open(path, "rb") as f:
                    return load(f)
            except Exception:  # noqa: BLE001 - an unreadable error file still leaves the text fallback
                continue
    return None
