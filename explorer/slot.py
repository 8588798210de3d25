"""One fine-tuning run at a time, held in the main process, with the GPU work in an inner generator.

``train_events(config)`` is the GPU function: it runs ``training.train`` in a thread of whatever process
it is in (a ZeroGPU worker, or this one) and yields typed events; closing it stops the run at its next
step and waits until the run has written its last checkpoint. ``TrainingSlot`` drives it from a thread of
the main process: the slot, the run's owner and cancel live there, so they hold under ZeroGPU too (where
the GPU function runs in a forked process whose state never comes back). Nothing here ever blocks
Gradio's event loop: a visitor leaving only sets a flag, and the driver thread releases the slot when
the run has really ended.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from explorer.concurrency import lower_priority, streamed
from explorer.errors import RunBusy
from explorer.profile import current
from training.checkpoint import is_complete
from training.config import TrainConfig, TrainingError
from training.loop import Callbacks, train
from training.runfolder import RunFolder, RunSummary

log = logging.getLogger(__name__)


@dataclass
class Log:
    message: str


@dataclass
class Step:
    epoch: int
    step: int
    steps: int
    loss: float


@dataclass
class Epoch:
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


@dataclass
class Done:
    """The run ended (finished, cancelled or stopped at its time limit)."""

    summary: RunSummary


@dataclass
class Failed:
    message: str


Event = Log | Step | Epoch | Done | Failed


class _EventCallbacks(Callbacks):
    def __init__(self, emit: Callable[[Event], None]) -> None:
        self.emit = emit

    def on_log(self, message: str) -> None:
        self.emit(Log(message))

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        self.emit(Step(epoch, step, steps, loss))  # every step: a closed consumer is noticed within one

    def on_epoch(self, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None:
        self.emit(Epoch(metrics, history))


def _lower_priority() -> None:
    """On a CPU server, training must not starve classification: a lower scheduling priority for this thread (and
    the worker threads it starts), with the profile's thread count (all of them: the first run of a frozen backbone
    is one long feature pass, and the priority already gives classification the cores when it needs them)."""
    torch.set_num_threads(current().training_threads)
    lower_priority()


def train_events(config: TrainConfig) -> Iterator[Event]:
    """The GPU function: run ``config`` and yield its events; ``close()`` stops it at the next step."""
    cancel = threading.Event()
    name = os.path.basename(str(config.output))

    def work(emit: Callable[[Event], None]) -> None:
        if str(config.device) == "cpu":
            _lower_priority()
        try:
            result = train(config, _EventCallbacks(emit), cancel)
            result.history = []  # the page has it from the epochs; the event stays small across processes
            emit(Done(result))
        except TrainingError as e:
            emit(Failed(str(e)))
        except Exception:  # never lose the server to a run: report, keep serving
            log.exception("run %s stopped unexpectedly", name)
            emit(Failed("The run stopped unexpectedly. The server is still running; please try again."))

    yield from streamed(work, name=f"training {name}", lower=False, on_close=cancel.set)


class RunHandle:
    """What the page that started a run holds: its events, and a way to stop it."""

    def __init__(self, name: str, config: TrainConfig) -> None:
        self.name, self.config = name, config
        self.queue: queue.Queue[Event | None] = queue.Queue()
        self.stop = threading.Event()
        self.ended = threading.Event()

    def events(self) -> Iterator[Event]:
        while True:
            event = self.queue.get()
            if event is None:
                return
            yield event


class TrainingSlot:
    """One run on the device at a time; only the visitor who started it may cancel it."""

    def __init__(self, gpu_train: Callable[[Any], Iterator[Event]] = train_events,
                 on_end: Callable[[str], None] | None = None, line_size: int = 3) -> None:
        self._gpu_train = gpu_train
        self._on_end = on_end
        self._lock = threading.Condition()  # also told when the slot frees or the line moves
        self.owner: str | None = None
        self._handle: RunHandle | None = None
        self._line: list[str] = []  # visitors waiting for the slot, first in line first
        self.line_size = line_size

    @property
    def busy(self) -> bool:
        return self.owner is not None

    def join(self, owner: str) -> None:
        """Take a place at the back of the line (a visitor whose run just ended too), or raise ``RunBusy``."""
        with self._lock:
            if owner == self.owner:
                raise RunBusy("Your run is still in progress (or saving its checkpoint); one at a time per visitor.")
            if owner in self._line:
                raise RunBusy("You are already waiting in line for the next run.")
            if len(self._line) >= self.line_size:
                raise RunBusy(f"{len(self._line)} visitors are already waiting for a fine-tuning run on this server. "
                              "Please try again later.")
            self._line.append(owner)

    def wait_turn(self, owner: str, timeout: float) -> int | None:
        """The owner's place after waiting up to ``timeout`` s for a change: 0 when it is their turn (the slot is
        free and they are first), N with N runs or visitors ahead, None when they are no longer in line."""
        with self._lock:
            if self._place(owner):
                self._lock.wait(timeout)
            return self._place(owner)

    def _place(self, owner: str) -> int | None:
        if owner not in self._line:
            return None
        return self._line.index(owner) + (self._handle is not None)

    def leave(self, owner: str) -> None:
        with self._lock:
            if owner in self._line:
                self._line.remove(owner)
                self._lock.notify_all()

    def start(self, config: TrainConfig, owner: str) -> RunHandle:
        """Take the slot and start the run in a driver thread, or raise ``RunBusy``."""
        with self._lock:
            if self._handle is not None:
                if self._handle.stop.is_set():
                    raise RunBusy("The previous run is still stopping (it saves its checkpoint first); please try "
                                  "again in a moment.")
                raise RunBusy("A fine-tuning run is already in progress on this server; only one runs at a time. "
                              "Please try again when it has finished.")
            if self._line and self._line[0] != owner:
                raise RunBusy("Visitors are waiting in line for the next run; please join the line.")
            if owner in self._line:
                self._line.remove(owner)
            handle = RunHandle(os.path.basename(str(config.output)), config)
            self.owner, self._handle = owner, handle
        threading.Thread(target=self._drive, args=(handle,), name=f"driver {handle.name}", daemon=True).start()
        return handle

    def cancel(self, owner: str) -> str:
        """Ask the owner's run to stop ("run": it stops within a step, keeping its last checkpoint), or take them
        out of the line ("line"); "" when they have neither. Never waits."""
        with self._lock:
            if owner in self._line:
                self._line.remove(owner)
                self._lock.notify_all()
                return "line"
            if self._handle is None or self.owner != owner:
                return ""
            self._handle.stop.set()
            return "run"

    def _drive(self, handle: RunHandle) -> None:
        events = self._gpu_train(handle.config)
        ended: Event | None = None
        try:
            for event in events:
                handle.queue.put(event)
                if isinstance(event, (Done, Failed)):
                    ended = event
                    break
                if handle.stop.is_set():
                    break
        except Exception as e:  # the GPU worker died or refused (a ZeroGPU quota, say)
            log.exception("run %s: the GPU call failed", handle.name)
            ended = Failed(f"The run could not continue on the GPU ({type(e).__name__}). Please try again later.")
            handle.queue.put(ended)
        finally:
            try:
                events.close()  # stops the run at its next step and waits for its checkpoint (no-op if it ended)
            except Exception:  # whatever happens to the worker, the slot is released below
                log.exception("run %s: closing the GPU call failed", handle.name)
            if ended is None:
                handle.queue.put(self._ended_from_disk(handle))
            if not is_complete(handle.config.output_dir()):  # a failed or early-cancelled start leaves nothing
                shutil.rmtree(handle.config.output_dir(), ignore_errors=True)
            handle.queue.put(None)
            with self._lock:
                self.owner, self._handle = None, None
                self._lock.notify_all()  # the first in line may start
            handle.ended.set()
            if self._on_end is not None:
                try:
                    self._on_end(handle.name)
                except Exception:
                    log.exception("after run %s", handle.name)

    @staticmethod
    def _ended_from_disk(handle: RunHandle) -> Event:
        """A run closed from outside reports what its folder says (the worker may have been another process)."""
        return Done(RunFolder(handle.config.output_dir()).summary())
