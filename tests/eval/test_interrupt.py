"""Ctrl-C during ``divprune-video bench ...``: every finished sample is on disk, the prefetch workers are stopped, one
line says how to resume (the same command), and the same command then finishes the run."""

import threading

from divprune_video.cli import main
from divprune_video.eval import runner
from divprune_video.eval.results import read_rank_statuses, read_records

from .test_runner import FakeModel


class InterruptedModel(FakeModel):
    """Raises KeyboardInterrupt (what Ctrl-C raises in the main thread) when asked its ``interrupt_at``-th sample;
    decoding is slow, so the prefetch workers are busy at that moment."""

    def __init__(self, interrupt_at):
        super().__init__(decode_seconds=0.05)
        self.interrupt_at, self.answered = interrupt_at, 0

    def answer(self, prepared, variants, seed):
        if self.answered + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        self.answered += 1
        return super().answer(prepared, variants, seed)


def test_ctrl_c_keeps_what_is_finished_and_says_how_to_resume(mvbench_data, tmp_path, capsys, monkeypatch):
    root, questions = mvbench_data
    command = [
        "bench",
        "mvbench",
        "--data-root",
        str(root),
        "--model",
        "fake",
        "--keep-ratio",
        "1",
        "0.5",
        "--workers",
        "2",
        "--prefetch",
        "4",
        "--output",
        str(tmp_path),
        "--no-progress",
    ]
    model = InterruptedModel(interrupt_at=6)
    monkeypatch.setattr(runner, "make_answerer", lambda config, local_rank=0: model)
    assert main(command) == 130
    err = capsys.readouterr().err.strip()
    assert err == (
        f"divprune-video bench: interrupted: 5 finished samples are saved under {tmp_path}; run the same "
        f"command again to resume"
    )
    for variant in ("unpruned", "divprune-keep0.5"):  # flushed, whole lines, nothing in flight
        assert len(read_records(tmp_path / variant / "samples.jsonl")) == 5
        assert (tmp_path / variant / "samples.jsonl").read_bytes().endswith(b"\n")
    assert read_rank_statuses(tmp_path)[0]["state"] == "interrupted"
    assert not [t.name for t in threading.enumerate() if t.name.startswith("prefetch")]  # stopped and joined

    monkeypatch.setattr(runner, "make_answerer", lambda config, local_rank=0: FakeModel())
    assert main(command) == 0
    assert f"answered {len(questions) - 5} samples here, 5 were already done" in capsys.readouterr().out
    assert len(read_records(tmp_path / "unpruned" / "samples.jsonl")) == len(questions)
