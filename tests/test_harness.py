"""The speed commands' shared harness: options, timing, tables, JSON rows and the recorded command."""

import argparse
import json
from dataclasses import dataclass

import pytest

from divprune_video.cli import main
from divprune_video.harness import Timing, add_common_options, command_line, markdown_table, time_calls, write_json


def test_common_options():
    parser = argparse.ArgumentParser()
    add_common_options(parser, repeats=5)
    args = parser.parse_args(["--device", "cpu", "--json", "rows.json"])
    assert (args.device, args.repeats, args.json_path) == ("cpu", 5, "rows.json")
    bare = argparse.ArgumentParser()
    add_common_options(bare, device=False, json_rows=False, repeats=None)
    assert vars(bare.parse_args([])) == {"repeats": None}


def test_time_calls_warms_up_then_times_each_call():
    calls = []
    timing = time_calls(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and len(timing.seconds) == 4 and timing.median_ms >= 0 and timing.spread_ms >= 0
    assert Timing((0.001, 0.003, 0.002)).median_ms == pytest.approx(2.0)


def test_markdown_table():
    table = markdown_table(["N", "path"], [[1, "full"], ["2,048", "chunked"]], align=["right", "left"])
    assert table.splitlines() == ["| N | path |", "|---:|---|", "| 1 | full |", "| 2,048 | chunked |"]
    with pytest.raises(ValueError, match="a row of 1 cells under 2 columns"):
        markdown_table(["a", "b"], [["only"]])


def test_json_rows_and_the_command_line(tmp_path):
    @dataclass
    class Row:
        size: int
        ms: float

    write_json(tmp_path / "rows.json", [Row(1, 0.5), {"size": 2, "ms": 0.25}])
    assert json.loads((tmp_path / "rows.json").read_text()) == [{"size": 1, "ms": 0.5}, {"size": 2, "ms": 0.25}]
    write_json(None, [Row(1, 0.5)])  # no path: nothing written
    assert (
        command_line(["bench-model", "--frames", "32,64", "--note", "a b"])
        == "divprune-video bench-model --frames 32,64 --note 'a b'"
    )


def test_bench_model_writes_its_three_tables_as_json(tmp_path, capsys):
    pytest.importorskip("transformers")
    path = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench-model",
                "--tiny",
                "--frames",
                "2",
                "--keep",
                "0.5",
                "--prune-layers",
                "0",
                "--decode-tokens",
                "3",
                "--json",
                str(path),
            ]
        )
        == 0
    )
    rows = json.loads(path.read_text())
    assert {row["table"] for row in rows} == {"ttft", "decoding", "shared prefill"}
    assert [row["path"] for row in rows if row["table"] == "ttft"] == ["plain", "ours", "ours"]
    assert "# command: divprune-video" in capsys.readouterr().out
