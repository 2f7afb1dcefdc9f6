"""``divprune-video bench``: run from flags and from the shipped YAML configs, check, plot."""

import json
from pathlib import Path

import pytest

from divprune_video.cli import main
from divprune_video.eval import RunConfig, Variant, config_from_mapping, read_config_file, run_benchmark
from divprune_video.testing import write_mlvu_fixture

from .test_runner import FakeModel

PIPELINES = Path(__file__).parents[2] / "pipelines"


@pytest.mark.parametrize("name", ["mvbench", "videomme", "mlvu"])
def test_shipped_pipeline_configs(name):
    settings = read_config_file(PIPELINES / f"{name}_divprune.yaml")
    config = config_from_mapping({**settings, "data_root": "/data", "output": "/out"})
    assert config.benchmark == name and config.num_frames == 32 and config.max_new_tokens == 16
    assert [(v.method, v.keep_ratio) for v in config.variants] == [
        ("none", 1.0),
        ("divprune", 0.15),
        ("divprune", 0.25),
        ("divprune", 0.5),
    ]
    assert config.variant_dir(config.variants[1]) == Path("/out/divprune-keep0.15")


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("benchmark: mvbench\nkeep_ratoi: 0.5\n")
    with pytest.raises(ValueError, match=f"{path}: unknown setting.*keep_ratoi"):
        read_config_file(path)
    with pytest.raises(ValueError, match="keep_ratio must be in"):
        Variant("divprune", 1.5)
    with pytest.raises(ValueError, match="unknown method 'divprun'"):
        Variant("divprune", 0.5) and Variant("divprun", 0.5)


def test_run_from_config_with_flag_overrides(replay_files, tmp_path, capsys):
    root, questions, replay, _ = replay_files["videomme"]
    code = main(
        [
            "bench",
            "run",
            "--config",
            str(PIPELINES / "videomme_divprune.yaml"),
            "--data-root",
            str(root),
            "--model",
            f"replay:{replay}",
            "--keep-ratio",
            "1",
            "--output",
            str(tmp_path),
            "--no-progress",
            "--tasks",
            "short,long",
        ]
    )
    assert code == 0
    summary = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert summary["config"]["num_frames"] == 32 and summary["config"]["dtype"] == "float16"  # from the YAML
    assert summary["variant"]["name"] == "unpruned"  # from the flags
    assert summary["label"] == f"replay of {replay.name}"  # what was measured: saved outputs, not a model
    assert summary["counts"]["samples"] == 2 * len(questions) // 3
    out = capsys.readouterr().out
    assert f"videomme replay of {replay.name}: overall {summary['overall']:.2f}" in out and "time per stage" in out


def test_errors_are_one_line_and_exit_code_2(tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "mlvu",
                "--config",
                str(PIPELINES / "mvbench_divprune.yaml"),
                "--data-root",
                str(tmp_path),
                "--output",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "mvbench_divprune.yaml is a mvbench config, not mlvu" in capsys.readouterr().err
    assert main(["bench", "videomme", "--data-root", str(tmp_path), "--output", str(tmp_path / "out")]) == 2
    assert f"error: no annotation file under {tmp_path}" in capsys.readouterr().err


def test_check_command(mvbench_data, tmp_path, capsys):
    root, _ = mvbench_data
    assert main(["bench", "check", str(root)]) == 0
    assert "mvbench under" in capsys.readouterr().out
    write_mlvu_fixture(tmp_path, questions_per_task=1, missing_videos=["count_0.mp4"])
    assert main(["bench", "check", str(tmp_path), "--benchmark", "mlvu"]) == 1
    out = capsys.readouterr().out
    assert "INCOMPLETE" in out and f"missing: {tmp_path / 'count_0.mp4'}" in out
    (tmp_path / "empty").mkdir()
    assert main(["bench", "check", str(tmp_path / "empty")]) == 1
    assert "no benchmark layout recognised" in capsys.readouterr().out


def test_plot_command(mvbench_data, tmp_path, capsys):
    root, _ = mvbench_data
    variants = (Variant(), Variant("divprune", 0.5), Variant("divprune", 0.25), Variant("uniform", 0.25))
    run_benchmark(
        RunConfig(
            benchmark="mvbench", data_root=root, model="fake", output=tmp_path / "runs", limit=1, variants=variants
        ),
        answerer=FakeModel(),
        progress=False,
    )
    png = tmp_path / "accuracy.png"
    assert main(["bench", "plot", str(tmp_path / "runs"), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotted 4 runs" in capsys.readouterr().out


# --- errors: one line, exit code 2, before any work -----------------------------------------------------------------


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a run gets as far as loading its model."""
    from divprune_video.eval import runner

    monkeypatch.setattr(runner, "make_answerer", lambda *args, **kwargs: pytest.fail("the model was loaded"))


def error_line(capsys):
    err = capsys.readouterr().err
    assert err.startswith("divprune-video bench: error: ") and err.count("\n") == 1, err
    return err


def test_output_that_is_a_file(mvbench_data, tmp_path, capsys, no_model):
    root, _ = mvbench_data
    (tmp_path / "out.txt").write_text("not a folder")
    for output in (tmp_path / "out.txt", tmp_path / "out.txt" / "run"):
        assert main(["bench", "mvbench", "--data-root", str(root), "--output", str(output), "--model", "fake"]) == 2
        assert f"{tmp_path / 'out.txt'} is a file, not a folder" in error_line(capsys)


def test_a_samples_line_without_id_stops_before_the_model_loads(mvbench_data, tmp_path, capsys, no_model):
    root, _ = mvbench_data
    samples = tmp_path / "unpruned" / "samples.jsonl"
    samples.parent.mkdir()
    samples.write_text('{"id": "action_count/0000"}\n{"index": 3}\n')
    assert main(["bench", "mvbench", "--data-root", str(root), "--output", str(tmp_path), "--model", "fake"]) == 2
    assert f"{samples} line 2: expected a JSON object with an 'id'" in error_line(capsys)


def test_unwritable_plot_path(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    (tmp_path / "folder").mkdir()
    missing_runs = str(tmp_path / "no-runs")  # the plot path is checked before the runs are read
    assert main(["bench", "plot", missing_runs, "-o", str(tmp_path / "file" / "accuracy.png")]) == 2
    assert f"{tmp_path / 'file'} is a file, not a folder" in error_line(capsys)
    assert main(["bench", "plot", missing_runs, "-o", str(tmp_path / "folder")]) == 2
    assert "it is a folder" in error_line(capsys)


def test_a_subtitle_file_that_is_not_utf8_is_named(tmp_path, capsys, no_model):
    from divprune_video.testing import write_videomme_fixture

    write_videomme_fixture(tmp_path, num_videos=2, questions_per_video=1)
    srt = tmp_path / "subtitle" / "vid001xyz.srt"
    srt.write_bytes(srt.read_bytes().replace(b"line 0", "ligne 0 \u00e9t\u00e9".encode("cp1252")))
    assert (
        main(
            [
                "bench",
                "videomme",
                "--data-root",
                str(tmp_path),
                "--subtitles",
                "--model",
                "fake",
                "--output",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    assert f"subtitle file {srt} is not UTF-8 text (byte 0xe9 at offset" in error_line(capsys)
    assert main(["bench", "check", str(tmp_path)]) == 1  # bench check reports it too
    assert f"problem: subtitle file {srt} is not UTF-8" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text,message",
    [
        ("num_frames: many", "setting 'num_frames' must be an integer; got 'many'"),
        ("num_frames: true", "setting 'num_frames' must be an integer; got True"),
        ("keep_ratio: '0.5'", "setting 'keep_ratio' must be a number or a list of them; got '0.5'"),
        ("skip_missing: 1", "setting 'skip_missing' must be true or false; got 1"),
        ("tasks: 5", "setting 'tasks' must be a string or a list of them; got 5"),
        ("variants: []", "setting 'variants' must be a non-empty list"),
        ("variants: [{method: divprune, keep_ratio: 0.5, layer: 2}]", "item 1: unknown key(s) ['layer']"),
        ("variants: [{method: divprune, keep_ratio: high}]", "item 1: 'keep_ratio' must be a number; got 'high'"),
        ("keep_ratios: []", "setting 'keep_ratios' must not be an empty list"),
        ("split: test", "setting 'split' applies to mlvu only, not to mvbench"),
    ],
)
def test_config_values_of_the_wrong_type_name_the_setting(mvbench_data, tmp_path, capsys, no_model, text, message):
    root, _ = mvbench_data
    path = tmp_path / "run.yaml"
    path.write_text(f"benchmark: mvbench\n{text}\n")
    assert main(["bench", "run", "--config", str(path), "--data-root", str(root), "--output", str(tmp_path / "o")]) == 2
    err = error_line(capsys)
    assert message in err and (str(path) in err or "applies to" in message)
    assert not (tmp_path / "o").exists()


def test_subtitle_frames_that_cannot_work(videomme_data, tmp_path, capsys, no_model):
    root, _ = videomme_data
    assert (
        main(
            [
                "bench",
                "videomme",
                "--data-root",
                str(root),
                "--subtitles",
                "--subtitle-frames",
                "-2",
                "--output",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "subtitle_frames must be >= 1, or -1 for every frame; got -2" in error_line(capsys)


def test_check_on_a_missing_folder(tmp_path, capsys):
    assert main(["bench", "check", str(tmp_path / "nothing")]) == 2
    assert f"DATA_ROOT {tmp_path / 'nothing'} is not a folder" in error_line(capsys)


@pytest.mark.parametrize(
    "command,flag",
    [
        ("mvbench", "--subtitles"),
        ("mvbench", "--split=test"),
        ("videomme", "--time-bounds"),
        ("videomme", "--split=test"),
        ("mlvu", "--subtitles"),
        ("mlvu", "--prompt-variant=llava_vid"),
    ],
)
def test_benchmark_flags_only_where_they_apply(tmp_path, capsys, command, flag):
    with pytest.raises(SystemExit) as stopped:
        main(["bench", command, "--data-root", str(tmp_path), "--output", str(tmp_path), flag])
    assert stopped.value.code == 2 and f"unrecognized arguments: {flag}" in capsys.readouterr().err


def test_run_takes_every_benchmark_flag_for_its_own_benchmark(mvbench_data, tmp_path, capsys, no_model):
    root, _ = mvbench_data
    assert (
        main(
            [
                "bench",
                "run",
                "--config",
                str(PIPELINES / "mvbench_divprune.yaml"),
                "--subtitles",
                "--data-root",
                str(root),
                "--output",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "setting 'subtitles' applies to videomme only, not to mvbench" in error_line(capsys)


def test_every_subcommand_describes_itself(capsys):
    descriptions = {}
    for command in ("mvbench", "videomme", "mlvu", "run", "check", "plot", "fixture", "scaling"):
        with pytest.raises(SystemExit):
            main(["bench", command, "--help"])
        text = capsys.readouterr().out
        descriptions[command] = text.split("\n\n")[1]  # the paragraph after the usage
    assert len(set(descriptions.values())) == len(descriptions)
    assert "lmms-eval's mvbench group" in descriptions["mvbench"] and "M-Avg" in descriptions["mlvu"]


# --- bench fixture ----------------------------------------------------------------------------------------------------


def test_fixture_command_writes_a_data_root_that_runs(tmp_path, capsys):
    pytest.importorskip("av")  # the fixture's videos are written with PyAV
    root, replay = tmp_path / "vmme", tmp_path / "gold.jsonl"
    assert main(["bench", "fixture", "videomme", str(root), "--samples", "6", "--replay", str(replay)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 6 videomme questions under {root}" in printed and f"--model replay:{replay}" in printed
    assert main(["bench", "check", str(root)]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "bench",
                "videomme",
                "--data-root",
                str(root),
                "--model",
                f"replay:{replay}",
                "--output",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "out" / "replay" / "summary.json").read_text())["overall"] == 100.0
    assert main(["bench", "fixture", "mvbench", str(root)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err


def test_fixture_command_for_mvbench_prints_the_tasks_it_holds(tmp_path, capsys):
    pytest.importorskip("av")  # the fixture's videos are written with PyAV
    assert main(["bench", "fixture", "mvbench", str(tmp_path / "mvb"), "--samples", "4", "--num-frames", "8"]) == 0
    out = capsys.readouterr().out
    assert "--tasks action_sequence,moving_count,action_prediction,episodic_reasoning" in out
    assert "--model tiny" in out and len(list((tmp_path / "mvb" / "json").glob("*.json"))) == 4
