"""llama.cpp's own account of a failure, kept where the user can find it.

llama-cpp-python points fds 1 and 2 at /dev/null while it loads a model (unless
verbose), so llama.cpp's error lines, and the message ggml prints before it aborts,
vanished: a failed load said nothing, an abort left runner.log empty. In the runner
we route llama.cpp's log (warnings and errors) to a copy of the log fd that the
redirect does not touch, keep the last errors for the runner's error event, and hook
ggml's abort so its message is written to the log and handed to ``on_abort`` (which
tells the daemon) before the process dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections import deque
from collections.abc import Callable
from typing import Any

# ggml.h's enum ggml_log_level (llama-cpp-python's _logger maps an older numbering)
_WARN, _ERROR, _CONT = 3, 4, 5
_ABORT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


class LlamaLog:
    """Owns the callbacks it hands to llama.cpp: keep it alive as long as the model."""

    def __init__(self, log_fd: int, on_abort: Callable[[str], None] | None) -> None:
        import llama_cpp

        self.errors: deque[str] = deque(maxlen=8)
        self.on_abort = on_abort  # None: the abort message goes to the log only
        self._fd = os.dup(log_fd)  # survives llama-cpp-python's redirect of fd 2
        self._last = 0
        self._log_callback = llama_cpp.llama_log_callback(self._log)
        llama_cpp.llama_log_set(self._log_callback, ctypes.c_void_p(0))
        self._abort_callback: Any = None
        hook = _ggml_function("ggml_set_abort_callback")
        if hook is not None:
            self._abort_callback = _ABORT_CALLBACK(self._abort)
            hook.restype = ctypes.c_void_p
            hook(self._abort_callback)

    def cause(self) -> str:
        """llama.cpp's last error lines, joined: why the load failed, in its words."""
        return " ".join(self.errors)

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError):  # a full disk must not turn an abort into a hang
            os.write(self._fd, text.encode("utf-8", "replace"))

    def _log(self, level: int, text: bytes, _: Any) -> None:
        level = self._last if level == _CONT else level
        self._last = level
        if level >= _WARN:  # info and debug lines are hundreds per load: not kept
            line = text.decode("utf-8", "replace")
            self._write(line)
            if level == _ERROR and line.strip():
                self.errors.append(line.strip()[:500])

    def _abort(self, message: bytes) -> None:
        text = message.decode("utf-8", "replace")
        self._write(f"llama.cpp aborted: {text}\n")
        if self.on_abort is not None:
            where, _, what = text.partition(" ")  # "/build/dir/src/llama-vocab.cpp:2544: …"
            self.on_abort(f"{where.rpartition('/')[2]} {what}")


def _ggml_function(name: str) -> Any:
    """A ggml function as libllama itself links it, or None.

    Looked up through libllama's handle (dlsym searches its dependencies): wheels hold
    copies, not symlinks, of libggml-base, so opening one by path could load a second
    copy whose abort callback llama.cpp never calls."""
    from llama_cpp import llama_cpp

    try:
        return getattr(llama_cpp._lib, name)
    except AttributeError:  # another build of llama-cpp-python, or Windows
        return None
