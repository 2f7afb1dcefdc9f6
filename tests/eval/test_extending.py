"""A new benchmark is one module plus its registration: a toy benchmark registered here runs through
``divprune-video bench`` (its own command, check, fixture and resume) with nothing else edited."""

import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import pytest

from divprune_video.cli import main
from divprune_video.eval.base import (
    BENCHMARKS,
    Benchmark,
    Sample,
    available_benchmarks,
    count_summary,
    register_benchmark,
    scored,
)
from divprune_video.eval.fixtures import FixtureSet, write_fixture_set
from divprune_video.eval.mcq import LetterExtractionScoring
from divprune_video.eval.results import read_records


class ToyCount(LetterExtractionScoring, Benchmark):
    """How many shapes? toy.json lists {"video", "question", "options", "answer"}; videos next to it."""

    name = "toycount"
    all_tasks = ("count",)
    description = "Run the toy counting benchmark (toy.json and its videos under --data-root)."
    settings = ("answer_word",)  # its own option: no field of BenchmarkOptions

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument("--answer-word", help="the word the prompt asks for (default: letter)")

    @classmethod
    def detect(cls, data_root: Path) -> bool:
        return (data_root / "toy.json").is_file()

    @classmethod
    def write_fixture(cls, root: Path, num_samples: int, *, num_frames: int = 32) -> FixtureSet:
        from divprune_video.testing import write_index_coded_video

        root.mkdir(parents=True, exist_ok=True)
        rows = []
        for index in range(num_samples):
            write_index_coded_video(root / f"v{index}.mp4", num_frames=num_frames)
            rows.append(
                {
                    "video": f"v{index}.mp4",
                    "question": f"How many shapes in video {index}?",
                    "options": ["A. one", "B. two"],
                    "answer": "AB"[index % 2],
                }
            )
        (root / "toy.json").write_text(json.dumps(rows))
        return FixtureSet(cls.name, root, (), None)

    @property
    def word(self) -> str:
        return self.options.get("answer_word", "letter")

    def annotation_path(self) -> Path:
        return self.data_root / "toy.json"

    def read_samples(self, tasks: Optional[Sequence[str]] = None) -> list[Sample]:
        rows = json.loads(self.annotation_path().read_text())
        return [
            Sample(
                id=f"count/{index:04d}",
                benchmark=self.name,
                task="count",
                index=index,
                video=row["video"],
                question=row["question"],
                options=tuple(row["options"]),
                gold=row["answer"],
                prompt=row["question"] + "\n" + "\n".join(row["options"]) + f"\nAnswer with the {self.word}.",
                video_path=self.data_root / row["video"],
            )
            for index, row in enumerate(rows)
        ]

    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        answered = scored(records)
        correct = sum(1 for record in answered if record["correct"])
        return {
            "overall": 100.0 * correct / max(1, len(answered)),
            "overall_definition": "accuracy",
            "counts": count_summary(records),
        }


@pytest.fixture
def toy_benchmark():
    register_benchmark(ToyCount)
    yield ToyCount
    BENCHMARKS.unregister(ToyCount.name)


def test_a_registered_benchmark_runs_through_the_command_line(toy_benchmark, tmp_path, capsys):
    pytest.importorskip("av")
    pytest.importorskip("transformers")
    assert "toycount" in available_benchmarks()
    assert main(["bench", "fixture", "toycount", str(tmp_path / "data"), "--samples", "3", "--num-frames", "4"]) == 0
    assert main(["bench", "check", str(tmp_path / "data")]) == 0
    assert "toycount" in capsys.readouterr().out
    command = [
        "bench",
        "toycount",
        "--data-root",
        str(tmp_path / "data"),
        "--model",
        "tiny",
        "--num-frames",
        "4",
        "--keep-ratio",
        "1",
        "0.5",
        "--output",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    assert main(command) == 0
    for variant in ("unpruned", "divprune-keep0.5"):
        records = read_records(tmp_path / "out" / variant / "samples.jsonl")
        assert [record["id"] for record in records] == ["count/0000", "count/0001", "count/0002"]
        assert all(record["error"] is None for record in records)
    assert main(command) == 0
    assert "answered 0 samples here, 3 were already done" in capsys.readouterr().out
    assert write_fixture_set("toycount", tmp_path / "again", 2).benchmark == "toycount"


def test_a_registered_benchmarks_own_option_reaches_it_from_flags_and_configs(toy_benchmark, tmp_path, capsys):
    """--answer-word is declared by the toy benchmark alone (settings + add_arguments): it reaches the prompts, is
    part of the run's fingerprint (a changed value does not resume), and is refused for another benchmark."""
    pytest.importorskip("av")
    pytest.importorskip("transformers")
    pytest.importorskip("yaml")
    assert main(["bench", "fixture", "toycount", str(tmp_path / "data"), "--samples", "2", "--num-frames", "4"]) == 0
    common = ["--data-root", str(tmp_path / "data"), "--model", "tiny", "--num-frames", "4", "--keep-ratio", "1"]
    common += ["--no-progress"]
    assert main(["bench", "toycount", *common, "--answer-word", "digit", "--output", str(tmp_path / "a")]) == 0
    records = read_records(tmp_path / "a" / "unpruned" / "samples.jsonl")
    assert all(record["prompt"].endswith("Answer with the digit.") for record in records)
    assert main(["bench", "toycount", *common, "--output", str(tmp_path / "a")]) == 2  # another value: no resume
    assert "answer_word" in capsys.readouterr().err
    config = tmp_path / "toy.yaml"
    config.write_text("benchmark: toycount\nanswer_word: number\n")
    assert main(["bench", "run", "--config", str(config), *common, "--output", str(tmp_path / "b")]) == 0
    records = read_records(tmp_path / "b" / "unpruned" / "samples.jsonl")
    assert all(record["prompt"].endswith("Answer with the number.") for record in records)
    other = tmp_path / "other.yaml"
    other.write_text("benchmark: mlvu\nanswer_word: number\n")
    assert main(["bench", "run", "--config", str(other), *common, "--output", str(tmp_path / "c")]) == 2
    assert "setting 'answer_word' applies to toycount only, not to mlvu" in capsys.readouterr().err


def test_unregistered_benchmarks_are_named_in_the_error(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark 'toycount'; registered: mlvu, mvbench, videomme"):
        write_fixture_set("toycount", tmp_path, 2)
    with pytest.raises(SystemExit):
        main(["bench", "toycount", "--data-root", str(tmp_path)])
