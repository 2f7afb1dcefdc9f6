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
        ("none", 1.0), ("divprune", 0.15), ("divprune", 0.25), ("divprune", 0.5)]
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
    code = main(["bench", "run", "--config", str(PIPELINES / "videomme_divprune.yaml"), "--data-root", str(root),
                 "--model", f"replay:{replay}", "--keep-ratio", "1", "--output", str(tmp_path), "--no-progress",
                 "--tasks", "short,long"])
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["num_frames"] == 32 and summary["config"]["dtype"] == "float16"  # from the YAML
    assert summary["variant"]["name"] == "unpruned"                                           # from the flags
    assert summary["counts"]["samples"] == 2 * len(questions) // 3
    out = capsys.readouterr().out
    assert f"videomme unpruned: overall {summary['overall']:.2f}" in out and "time per stage" in out


def test_errors_are_one_line_and_exit_code_2(tmp_path, capsys):
    assert main(["bench", "mlvu", "--config", str(PIPELINES / "mvbench_divprune.yaml"), "--data-root",
                 str(tmp_path), "--output", str(tmp_path)]) == 2
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
    assert main(["bench", "check", str(tmp_path / "nothing")]) == 1
    assert "no benchmark layout recognised" in capsys.readouterr().out


def test_plot_command(mvbench_data, tmp_path, capsys):
    root, _ = mvbench_data
    variants = (Variant(), Variant("divprune", 0.5), Variant("divprune", 0.25), Variant("uniform", 0.25))
    run_benchmark(RunConfig(benchmark="mvbench", data_root=root, model="fake", output=tmp_path / "runs", limit=1,
                            variants=variants), answerer=FakeModel(), progress=False)
    png = tmp_path / "accuracy.png"
    assert main(["bench", "plot", str(tmp_path / "runs"), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotted 4 runs" in capsys.readouterr().out
