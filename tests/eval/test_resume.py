"""Resume reads what an interrupted run left: a last line cut anywhere is dropped (only it), a damaged line elsewhere
is an error naming file and line; one output layout for any number of variants, so a keep ratio added later reuses
the finished ones; ``bench plot`` draws each variant once."""

import json
import logging
import shutil

import pytest

from divprune_video.cli import main
from divprune_video.eval import RunConfig, Variant, plots, run_benchmark
from divprune_video.eval.results import JsonlWriter, ResultsError, read_records

from .test_runner import FakeModel

RECORDS = [{"id": f"s{i}", "index": i, "text": "naïve café ✓ 日本語", "n": i} for i in range(3)]


def write_lines(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path.read_bytes()


def test_a_last_line_cut_at_any_byte_is_dropped_alone(tmp_path, caplog):
    path = tmp_path / "samples.jsonl"
    data = write_lines(path, RECORDS)
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    cuts = range(last_start + 1, len(data) - 1)  # every cut inside the last record, its closing brace excluded
    inside_a_character = [cut for cut in cuts if (data[cut] & 0xC0) == 0x80]
    assert inside_a_character, "the record must hold multi-byte characters"
    for cut in cuts:
        path.write_bytes(data[:cut])
        with caplog.at_level(logging.WARNING):
            assert read_records(path) == RECORDS[:2], cut
        assert "unfinished last line" in caplog.text
        caplog.clear()
        with JsonlWriter(path) as writer:  # a resumed run drops the same line before appending
            writer.write(RECORDS[2])
        assert read_records(path) == RECORDS


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_bytes(write_lines(path, RECORDS).rstrip(b"\n"))
    assert read_records(path) == RECORDS
    with JsonlWriter(path) as writer:
        writer.write({"id": "s3"})
    assert [r["id"] for r in read_records(path)] == ["s0", "s1", "s2", "s3"]


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda lines: lines[:1] + [lines[1][:20]] + lines[2:], "line 2: not a JSON record"),
        (lambda lines: lines[:1] + [lines[1][:7] + b"\xff" + lines[1][8:]] + lines[2:], "line 2: not a JSON record"),
        (lambda lines: lines[:2] + [b'{"index": 2}'] + lines[3:], "line 3: expected a JSON object with an 'id'"),
        (lambda lines: lines[:2] + [b"[1, 2]"] + lines[3:], "line 3: expected a JSON object with an 'id'"),
    ],
)
def test_a_damaged_line_elsewhere_names_file_and_line(tmp_path, damage, message):
    path = tmp_path / "samples.jsonl"
    lines = write_lines(path, RECORDS).split(b"\n")
    path.write_bytes(b"\n".join(damage(lines)))
    with pytest.raises(ResultsError, match=f"{path} {message}"):
        read_records(path)


def mvbench_config(root, output, *ratios, **overrides):
    variants = tuple(Variant("divprune", ratio) for ratio in ratios)
    return RunConfig(
        benchmark="mvbench",
        data_root=root,
        model="fake",
        output=output,
        variants=variants,
        tasks=("action_count", "moving_count"),
        **overrides,
    )


class RecordingModel(FakeModel):
    def __init__(self):
        super().__init__()
        self.asked = []

    def answer(self, prepared, variants, seed):
        self.asked.append([v.name for v in variants])
        return super().answer(prepared, variants, seed)


def test_resume_after_a_cut_inside_a_utf8_character(mvbench_data, tmp_path):
    root, _ = mvbench_data
    run_benchmark(mvbench_config(root, tmp_path, 0.5), answerer=FakeModel(), progress=False)
    path = tmp_path / "divprune-keep0.5" / "samples.jsonl"
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    record = json.loads(data[last:])
    record["response"] = "réponse ✓"
    data = data[:last] + json.dumps(record, ensure_ascii=False).encode() + b"\n"
    path.write_bytes(data[: data.index("✓".encode()) + 1])  # cut after the first byte of a three-byte character
    result = run_benchmark(mvbench_config(root, tmp_path, 0.5), answerer=FakeModel(), progress=False)
    assert (result.skipped_done, result.processed) == (3, 1)
    assert [r["id"] for r in read_records(path)] == [
        "moving_count/0000",
        "moving_count/0001",
        "action_count/0000",
        "action_count/0001",
    ]  # benchmark order, each once


def test_a_keep_ratio_added_later_reuses_the_finished_one(mvbench_data, tmp_path):
    root, _ = mvbench_data
    first = run_benchmark(mvbench_config(root, tmp_path, 0.5), answerer=FakeModel(), progress=False)
    assert first.processed == 4 and (tmp_path / "divprune-keep0.5" / "summary.json").is_file()
    model = RecordingModel()
    second = run_benchmark(mvbench_config(root, tmp_path, 0.5, 0.25), answerer=model, progress=False)
    assert model.asked == [["divprune-keep0.25"]] * 4  # the finished variant is not answered again
    assert len(read_records(tmp_path / "divprune-keep0.5" / "samples.jsonl")) == 4
    assert second.summaries["divprune-keep0.5"]["overall"] == first.summaries["divprune-keep0.5"]["overall"]
    # and back to one ratio: still found where it is
    again = run_benchmark(mvbench_config(root, tmp_path, 0.25), answerer=RecordingModel(), progress=False)
    assert again.processed == 0 and again.skipped_done == 4


def test_a_run_in_the_older_single_variant_layout_is_adopted(mvbench_data, tmp_path):
    root, _ = mvbench_data
    run_benchmark(mvbench_config(root, tmp_path, 0.5), answerer=FakeModel(), progress=False)
    for path in (tmp_path / "divprune-keep0.5").iterdir():  # how a single-variant run used to lay its files out
        shutil.move(path, tmp_path / path.name)
    (tmp_path / "divprune-keep0.5").rmdir()
    model = RecordingModel()
    run_benchmark(mvbench_config(root, tmp_path, 0.5, 0.25), answerer=model, progress=False)
    assert model.asked == [["divprune-keep0.25"]] * 4
    assert not (tmp_path / "samples.jsonl").exists() and not (tmp_path / "run.json").exists()
    assert len(read_records(tmp_path / "divprune-keep0.5" / "samples.jsonl")) == 4


def test_plot_draws_each_variant_once(mvbench_data, tmp_path, capsys, monkeypatch):
    root, _ = mvbench_data
    runs = tmp_path / "runs"
    run_benchmark(
        RunConfig(
            benchmark="mvbench",
            data_root=root,
            model="fake",
            output=runs,
            limit=1,
            variants=(Variant(), Variant("divprune", 0.5), Variant("divprune", 0.25)),
        ),
        answerer=FakeModel(),
        progress=False,
    )
    shutil.copytree(runs, tmp_path / "copy")
    drawn = []
    original = plots._draw_panel
    monkeypatch.setattr(
        plots,
        "_draw_panel",
        lambda axis, title, lines, references: (
            drawn.append((title, {line: sorted(p[0] for p in points) for line, points in lines.items()}, references)),
            original(axis, title, lines, references),
        ),
    )
    png = tmp_path / "accuracy.png"
    # the same runs through a folder, a variant folder, a summary file and a copy of the whole folder
    assert (
        main(
            [
                "bench",
                "plot",
                str(runs),
                str(runs / "divprune-keep0.5"),
                str(runs / "unpruned" / "summary.json"),
                str(tmp_path / "copy"),
                "-o",
                str(png),
            ]
        )
        == 0
    )
    assert "plotted 3 runs" in capsys.readouterr().out
    [(title, lines, references)] = drawn
    assert lines == {"fake: divprune": [0.25, 0.5]} and [label for label, _ in references] == ["fake unpruned"]
