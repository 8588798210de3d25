"""The app's one seam for GPU work: ``on_gpu(duration)``.

* On a ZeroGPU Space (the profile's ``zero_gpu``: ``SPACES_ZERO_GPU=true``) it is ``spaces.GPU``: each call
  runs in a forked worker that holds a slice of an H200, and CUDA is only real there. ``spaces`` must be
  imported before anything initialises CUDA, so ``app.py`` imports this module first, and this module imports
  it there, before anything else (and nowhere else).
* With the profile's ``fork_gpu`` (``GOOGLENET_FORK_GPU=1``) it is ``forked``, a stand-in that runs every call in a fresh forked
  process as ZeroGPU does (arguments, results and each yielded value pickled; a closed generator
  stopped at its next yield), so the app's ZeroGPU behaviour is tested without ZeroGPU.
* Anywhere else it does nothing.
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# ``spaces`` patches CUDA for ZeroGPU and must come before torch, so this reads its one variable itself, before the
# profile (which imports torch) can. Elsewhere it is not imported: importing it walks every object of the process
# (its code registry: seconds in a large one) and hooks every later import.
if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "true"):
    try:
        import spaces
    except ImportError:  # only a ZeroGPU Space needs it (requirements-zerogpu.txt); on_gpu says so
        spaces = None
else:
    spaces = None

from explorer.profile import current  # noqa: E402  (after spaces)

Duration = int | Callable[..., int]


def on_gpu(duration: Duration) -> Callable[[Callable], Callable]:
    """Decorate a function that does GPU work; ``duration`` (seconds, or a callable of the call's
    arguments, both from the profile) is what ZeroGPU reserves."""
    profile = current()

    def decorate(fn: Callable) -> Callable:
        if profile.zero_gpu:
            if spaces is None:
                raise RuntimeError("SPACES_ZERO_GPU is set, but the `spaces` package is not installed "
                                   "(pip install -r requirements-zerogpu.txt).")
            fn = spaces.GPU(duration=duration)(fn)
        elif profile.fork_gpu:
            fn = forked(fn)
        fn.gpu_duration = duration  # what ZeroGPU is told, kept where a test can ask it for any call
        return fn
    return decorate


class WorkerError(Exception):
    """An exception in a forked worker that could not be sent back as itself."""


def _child(conn: Any, fn: Callable, args: tuple, kwargs: dict) -> None:
    # As spaces does, the call runs in a new thread of the worker: the forking thread's OpenMP pool does not
    # survive fork. The stand-in computes on one CPU thread (real ZeroGPU workers compute on the GPU).
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_run_in_child, conn, fn, args, kwargs).result()
    conn.close()
    os._exit(0)  # no atexit handlers or inherited threads of the parent run in the fork


def _run_in_child(conn: Any, fn: Callable, args: tuple, kwargs: dict) -> None:
    try:
        result = fn(*args, **kwargs)
        if inspect.isgenerator(result):
            for value in result:
                if conn.poll() and conn.recv() == "close":  # the consumer closed: stop at this yield
                    result.close()
                    break
                conn.send(("yield", value))
            conn.send(("return", None))
        else:
            conn.send(("return", result))
    except BaseException as e:  # noqa: BLE001 - everything goes back to the caller
        try:
            conn.send(("raise", e))
        except Exception:
            conn.send(("raise", WorkerError(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")))


def forked(fn: Callable) -> Callable:
    """Run each call of ``fn`` in a fresh forked process, as ZeroGPU does."""
    context = multiprocessing.get_context("fork")

    def start(args: tuple, kwargs: dict) -> tuple[Any, Any]:
        parent, child = context.Pipe()
        process = context.Process(target=_child, args=(child, fn, args, kwargs), daemon=True)
        process.start()
        child.close()
        return parent, process

    def receive(conn: Any) -> tuple[str, Any]:
        try:
            return conn.recv()
        except (EOFError, OSError):
            return "raise", WorkerError("the GPU worker process died")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            conn, process = start(args, kwargs)
            try:
                while True:
                    kind, value = receive(conn)
                    if kind == "yield":
                        yield value
                    elif kind == "raise":
                        raise value
                    else:
                        return
            finally:
                if process.is_alive():
                    try:
                        conn.send("close")
                    except OSError:
                        pass
                    while process.is_alive():  # drain, so the worker never blocks on a full pipe
                        try:
                            if conn.poll(0.1):
                                conn.recv()
                        except (EOFError, OSError):  # the worker has finished and closed its end
                            break
                process.join()
                conn.close()
        return generator

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        conn, process = start(args, kwargs)
        try:
            kind, value = receive(conn)
        finally:
            process.join()
            conn.close()
        if kind == "raise":
            raise value
        return value
    return call
