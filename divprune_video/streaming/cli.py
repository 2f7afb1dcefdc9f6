"""``divprune-video stream SOURCE``: answer questions about a live video while it plays.

SOURCE is a webcam index (0, 1, ...), a device path (/dev/video0), an rtsp/http URL, or a video file (played as a
live source, at its own speed; --fast ingests it as fast as the model goes). Frames are sampled at --sample-fps,
encoded one by one, and their visual tokens merged into a memory of at most --budget tokens (DivPrune: the most
diverse tokens of everything seen so far), so memory and per-frame cost stay constant however long it runs.

Type a question and press Enter at any time; --question asks one at the end (or every --ask-every seconds). A
status line shows frames ingested and dropped, reconnects, the memory and the per-frame times. Ctrl-C, the end of
the stream or --duration stops it cleanly (Ctrl-C: one line says what was ingested). A network stream that drops
is reopened with backoff (--max-retries); when it does not come back the command says so and exits with status 1.
Bad arguments (a missing file, a --budget below one frame's tokens, an empty --question, ...) are refused with
status 2 before the model is loaded.

Without --model the embedded tiny random-weight model runs (no download): its answers are gibberish; use e.g.
--model llava-hf/LLaVA-NeXT-Video-7B-hf for real answers (a GPU recommended).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any, Optional, TextIO, Union

from ..cli import argument_error, device_problem, model_config, model_problem, resolved_model
from .memory import MEMORIES

TINY_NOTICE = (
    "Note: no --model given, so the embedded tiny LLaVA-NeXT-Video runs; it has random weights and its "
    "answers are gibberish. The point is the mechanics (a bounded, diverse token memory of a live feed); "
    "use --model llava-hf/LLaVA-NeXT-Video-7B-hf for real answers."
)
_POLL_SECONDS = 0.1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stream",
        help="answer questions about a webcam, live stream or file while it plays (bounded diverse token memory)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="webcam index (0), device path (/dev/video0), rtsp/http URL, or video file")
    add_stream_options(parser)
    parser.set_defaults(func=run)


def add_stream_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``divprune-video stream`` (shared with examples/webcam_qa.py and examples/stream_qa.py)."""
    model = parser.add_argument_group("model and memory")
    model.add_argument(
        "--model",
        default=None,
        metavar="tiny|ID|PATH",
        help="a LLaVA-NeXT-Video checkpoint (hub id or folder); default: the embedded tiny model",
    )
    model.add_argument("--budget", type=int, default=2048, help="visual tokens kept in memory (default 2048)")
    model.add_argument("--sample-fps", type=float, default=1.0, help="frames per second ingested (default 1)")
    model.add_argument(
        "--method",
        default="divprune",
        choices=MEMORIES.names(),
        help="memory policy (default divprune; recent = the latest tokens; any registered memory)",
    )
    model.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    model.add_argument("--timestamps", action="store_true", help="tell the model when the frames were taken")
    questions = parser.add_argument_group("questions")
    questions.add_argument(
        "--question",
        action="append",
        default=[],
        metavar="Q",
        help="a question to ask at the end (or every --ask-every s); repeatable",
    )
    questions.add_argument(
        "--ask-every",
        type=float,
        default=None,
        metavar="S",
        help="ask the --question(s) every S seconds while the stream runs",
    )
    questions.add_argument("--max-new-tokens", type=int, default=32, help="answer length (default 32)")
    questions.add_argument("--no-stdin", action="store_true", help="do not read questions from the terminal")
    stream = parser.add_argument_group("stream")
    stream.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    stream.add_argument(
        "--fast", action="store_true", help="files: ingest as fast as possible instead of playing them in real time"
    )
    stream.add_argument(
        "--status-every", type=float, default=5.0, metavar="S", help="seconds between status lines (default 5; 0: none)"
    )
    stream.add_argument(
        "--max-retries",
        type=int,
        default=5,
        help="reconnect attempts in a row before giving up on a network stream (default 5)",
    )
    stream.add_argument("--backoff", type=float, default=0.5, help="first wait between reconnects, s (default 0.5)")
    stream.add_argument("--timeout", type=float, default=10.0, help="network read timeout, s (default 10)")
    stream.add_argument(
        "--max-queue", type=int, default=4, help="frames buffered before the oldest are dropped (default 4)"
    )


def parse_source(text: str) -> Union[int, str]:
    """A webcam index for a plain number ("0" -> 0), else the text itself (path, device path or URL)."""
    return int(text) if text.strip().isdigit() else text


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status (0: done or Ctrl-C, 1: the source failed, 2: bad arguments)."""
    problem = check_arguments(args)
    if problem:
        return argument_error(problem)
    try:
        qa = _load(args)
    except (ValueError, TypeError, OSError) as error:
        return argument_error(str(error))
    except KeyboardInterrupt:
        print("\nstopped (Ctrl-C) while loading the model: nothing ingested", flush=True)
        return 0
    return StreamSession(qa, args).run(parse_source(args.source))


def _load(args: argparse.Namespace) -> Any:
    from . import StreamingVideoQA

    model = resolved_model(args.model)
    if model is None:
        from ..models.presets import tiny_model_path

        print(TINY_NOTICE, flush=True)
        model = str(tiny_model_path())
    return StreamingVideoQA(
        model,
        token_budget=args.budget,
        sample_fps=args.sample_fps,
        method=args.method,
        device=args.device,
        timestamps_in_prompt=args.timestamps,
    )


def check_arguments(args: argparse.Namespace) -> Optional[str]:
    """The first bad argument, found before any work (the model's config is read, the model is not loaded), or
    None."""
    problem = (
        _check_options(args) or source_problem(args.source) or device_problem(args.device) or model_problem(args.model)
    )
    if problem:
        return problem
    try:
        per_frame = frame_tokens(model_config(resolved_model(args.model)))
    except ValueError as error:
        return str(error)
    if per_frame is not None and args.budget < per_frame:
        return (
            f"--budget {args.budget} is below one frame's {per_frame} visual tokens for this model; use at "
            f"least {per_frame}"
        )
    return None


def source_problem(source: str) -> Optional[str]:
    """A SOURCE naming a local file or folder that is not there (webcams, devices and URLs are tried when opened,
    with their own messages)."""
    if source.strip().isdigit() or "://" in source or source.startswith("/dev/"):
        return None
    return None if os.path.exists(source) else f"SOURCE: no such file: {source}"


def frame_tokens(config: Any) -> Optional[int]:
    """Visual tokens one frame becomes under checkpoint ``config``, when its family can tell from the config alone
    (None otherwise: the first frame checks the budget)."""
    from ..models import adapter_class

    try:
        return adapter_class(config.model_type).frame_tokens(config)
    except ValueError:  # a model type no family serves: loading it says so
        return None


def _check_options(args: argparse.Namespace) -> Optional[str]:
    if args.budget < 1:
        return f"--budget must be at least 1; got {args.budget}"
    if any(not question.strip() for question in args.question):
        return "--question must not be empty"
    if not args.sample_fps > 0:
        return f"--sample-fps must be positive; got {args.sample_fps}"
    for name in ("ask_every", "duration"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            return f"--{name.replace('_', '-')} must be positive; got {value}"
    if args.ask_every and not args.question:
        return "--ask-every needs at least one --question"
    if args.max_new_tokens < 1 or args.max_queue < 1 or args.max_retries < 0:
        return "--max-new-tokens and --max-queue must be >= 1, --max-retries >= 0"
    return None


class StreamSession:
    """The command's main loop: status lines, questions from the terminal and the options, a clean stop."""

    def __init__(self, qa: Any, args: argparse.Namespace, out: Optional[TextIO] = None) -> None:
        self.qa, self.args, self.out = qa, args, out
        self.started = time.monotonic()

    def run(self, source: Union[int, str]) -> int:
        from ..video import VideoError

        args, status, interrupted = self.args, 0, False
        stdin = TerminalQuestions(enabled=not args.no_stdin)
        try:
            self.qa.run(
                source,
                realtime=not args.fast,
                max_queue=args.max_queue,
                max_retries=args.max_retries,
                backoff=args.backoff,
                timeout=args.timeout,
            )
            self._say(
                f"streaming {self.qa.source_name}: {args.sample_fps:g} frame/s into a {args.method} memory of "
                f"{args.budget} tokens. "
                + ("Type a question and press Enter; " if stdin.enabled else "")
                + "Ctrl-C stops."
            )
            self._say(f"stopped: {self._loop(stdin)}")
        except KeyboardInterrupt:
            interrupted = True
        except VideoError as error:
            status = self._source_failed(error, source)
        except ValueError as error:  # what the first frame found wrong (a --budget below its tokens)
            status = argument_error(str(error))
        finally:
            stdin.close()
            status, stopped = self._stop_ingestion(source, status)
        interrupted = interrupted or stopped or not self._final_answers(status)  # no questions after a Ctrl-C
        self._say(f"\nstopped (Ctrl-C): {self.ingested()}" if interrupted else self.status_line())
        return status

    def _stop_ingestion(self, source: Union[int, str], status: int) -> tuple[int, bool]:
        """Close the source and join the ingestion thread, through further Ctrl-Cs (the thread ends with the frame
        it is encoding). Returns the exit status (1 when the source had failed) and whether Ctrl-C was pressed."""
        from ..video import VideoError

        interrupted = False
        while True:
            try:
                self.qa.close()
                return status, interrupted
            except KeyboardInterrupt:
                interrupted = True
            except VideoError as error:
                return self._source_failed(error, source), interrupted
            except ValueError as error:
                return argument_error(str(error)), interrupted

    def _final_answers(self, status: int) -> bool:
        """Ask the --question(s) at the end (unless --ask-every asked them already); False on Ctrl-C."""
        if status != 0 or not self.args.question or self.args.ask_every:
            return True
        try:
            for question in self.args.question:
                self.answer(question)
        except KeyboardInterrupt:
            return False
        return True

    def _loop(self, stdin: "TerminalQuestions") -> str:
        args = self.args
        next_status = self.started + (args.status_every or float("inf"))
        next_ask = self.started + args.ask_every if args.ask_every else float("inf")
        while True:
            if not self.qa.running:
                self.qa.wait(0)  # raises what ended the stream, if it failed
                return "end of stream"
            now = time.monotonic()
            if args.duration and now - self.started >= args.duration:
                return f"--duration {args.duration:g} s reached"
            if now >= next_status:
                self._say(self.status_line())
                next_status = now + args.status_every
            if now >= next_ask:
                for question in args.question:
                    self.answer(question)
                next_ask = time.monotonic() + args.ask_every
            for question in stdin.poll(_POLL_SECONDS):
                self.answer(question)

    def answer(self, question: str) -> None:
        """Ask the memory now and print the answer with where it came from."""
        from . import EmptyMemoryError

        elapsed = time.monotonic() - self.started
        try:
            result = self.qa.ask(question, max_new_tokens=self.args.max_new_tokens, do_sample=False)
        except EmptyMemoryError:
            self._say(f"[{elapsed:7.1f} s] Q: {question}\n            (no frame yet; ask again in a moment)")
            return
        frames = self.qa.memory_frame_ids  # may have moved on since the snapshot: only for the span shown
        seconds = sum(result.timings.get(stage, 0.0) for stage in ("snapshot", "select", "prefill", "generate"))
        span = f"frames {int(frames.min())}-{int(frames.max())}" if frames.numel() else "no frames"
        self._say(
            f"[{elapsed:7.1f} s] Q: {question}\n            A: {result.answer}\n"
            f"            ({result.num_kept} tokens in memory of {result.num_visual_tokens} seen, {span}; "
            f"answered in {1e3 * seconds:.0f} ms)"
        )

    def status_line(self) -> str:
        stats = self.qa.stats
        elapsed = time.monotonic() - self.started
        return (
            f"[{elapsed:7.1f} s] frames {stats.frames_ingested} (dropped {stats.frames_dropped}, reconnects "
            f"{stats.reconnects}) | memory {stats.memory_tokens}/{stats.token_budget} tokens from "
            f"{stats.memory_frames} frames | per frame: encode {1e3 * stats.last_encode_seconds:.1f} ms, update "
            f"{stats.last_update_ms:.1f} ms"
        )

    def ingested(self) -> str:
        """What was ingested, in one line (said when Ctrl-C stops the command)."""
        stats = self.qa.stats
        return (
            f"{stats.frames_ingested} frames ingested from {self.qa.source_name or self.args.source} "
            f"({stats.frames_dropped} dropped, {stats.reconnects} reconnects); memory {stats.memory_tokens}/"
            f"{stats.token_budget} tokens from {stats.memory_frames} frames"
        )

    def _source_failed(self, error: BaseException, source: Union[int, str]) -> int:
        print(f"error: {error}", file=sys.stderr)
        if isinstance(source, int) or str(source).startswith("/dev/video"):
            print(f"hint: is a camera connected as {source!r}? (Linux: ls /dev/video*)", file=sys.stderr)
        return 1

    def _say(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)


class TerminalQuestions:
    """Lines typed on stdin, read without blocking the loop (``select`` on POSIX; elsewhere a daemon reader thread,
    which cannot be joined while it waits for a line). Disabled when stdin is not readable (or at its end)."""

    def __init__(self, enabled: bool = True) -> None:
        self._fd: Optional[int] = None
        self._pending = b""
        self._lines: list[str] = []
        self._thread: Optional[threading.Thread] = None
        if not enabled or sys.stdin is None:
            return
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):
            return
        if os.name == "posix":
            self._fd = fd
        else:
            self._thread = threading.Thread(target=self._read_lines, name="divprune-stream stdin", daemon=True)
            self._thread.start()

    @property
    def enabled(self) -> bool:
        return self._fd is not None or self._thread is not None

    def poll(self, timeout: float) -> list[str]:
        """Questions typed since the last call (waits up to ``timeout`` s for one)."""
        if self._fd is None:
            time.sleep(timeout)
            lines, self._lines = self._lines, []
            return lines
        import select

        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return []
        data = os.read(self._fd, 4096)
        if not data:  # end of input: keep streaming, stop reading
            self._fd = None
            data = b"\n"
        *lines, self._pending = (self._pending + data).split(b"\n")
        return [text for text in (line.decode(errors="replace").strip() for line in lines) if text]

    def _read_lines(self) -> None:
        for line in sys.stdin:
            if line.strip():
                self._lines.append(line.strip())

    def close(self) -> None:
        self._fd = None
