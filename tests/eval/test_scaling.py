"""``divprune-video bench scaling``: the whole command on the CPU (gloo, two ranks, the tiny model, kill and resume),
the comparison of two results folders, the fixture set sizes and the option checks."""

import json
import shutil
from pathlib import Path

import pytest

from divprune_video.cli import main
from divprune_video.eval import BenchmarkOptions, get_benchmark
from divprune_video.eval.compare import compare_results
from divprune_video.eval.fixtures import write_fixture_set
from divprune_video.eval.results import SAMPLES_FILE, read_rank_statuses, read_records, write_jsonl_atomic
from divprune_video.eval.scaling import MULTICAST_OFF, ScalingOptions, child_environment

VARIANT = "divprune-keep0.15"  # each variant's results are in its own sub-folder of the run's output


@pytest.mark.slow
def test_scaling_command_on_cpu(tmp_path, capsys):
    pytest.importorskip("av")  # the scaling check writes its videos with PyAV
    workdir = tmp_path / "scaling"
    code = main(
        [
            "bench",
            "scaling",
            "--model",
            "tiny",
            "--nproc",
            "2",
            "--samples",
            "16",
            "--num-frames",
            "8",
            "--kill-after",
            "3",
            "--workdir",
            str(workdir),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, out + err
    report = (workdir / "report.md").read_text()
    assert report.strip() in out  # the printed block is the file

    # Identical merged results, checked here independently of the tool's own comparison.
    single = read_records(workdir / "single" / VARIANT / SAMPLES_FILE)
    sharded = read_records(workdir / "torchrun" / VARIANT / SAMPLES_FILE)
    strip = [
        [{k: v for k, v in record.items() if k != "timings"} for record in records] for records in (single, sharded)
    ]
    assert len(single) == 16 and strip[0] == strip[1]
    summaries = [json.loads((workdir / run / VARIANT / "summary.json").read_text()) for run in ("single", "torchrun")]
    assert summaries[0]["config"]["world_size"] == 1 and summaries[1]["config"]["world_size"] == 2
    assert summaries[0]["overall"] == summaries[1]["overall"] and summaries[0]["counts"] == summaries[1]["counts"]
    statuses = read_rank_statuses(workdir / "torchrun")
    assert sorted(statuses) == [0, 1] and sum(s["processed"] for s in statuses.values()) == 16
    assert all(
        s["device"] == "cpu" and s["state"] == "done" and len(s["finished_after"]) == 8 for s in statuses.values()
    )

    # Kill and resume: every sample once, same answers, the rerun answered exactly what the kill left undone.
    killed = read_records(workdir / "killed" / VARIANT / SAMPLES_FILE)
    assert sorted(r["id"] for r in killed) == sorted(r["id"] for r in single)
    assert [{k: v for k, v in r.items() if k != "timings"} for r in killed] == strip[0]
    assert json.loads((workdir / "killed" / VARIANT / "summary.json").read_text())["counts"]["samples"] == 16
    resumed = read_rank_statuses(workdir / "killed")
    skipped = sum(s["skipped_done"] for s in resumed.values())
    assert 3 <= skipped < 16 and sum(s["processed"] for s in resumed.values()) == 16 - skipped
    assert "Kill and resume: **passed**" in report and "got SIGKILL" in report
    assert f"skipped {skipped}" in report

    # The report: throughput of both runs, the per-stage breakdown, the verdict and the exact commands.
    assert "| single process | 1 | 16 |" in report and "| torchrun --nproc-per-node 2 | 2 | 16 |" in report
    assert "decode ms | encode ms | select ms | prefill ms | generate ms" in report
    assert "divprune-keep0.15: **identical**" in report and "Speedup with 2 process(es)" in report
    assert "samples/s (steady, after 2 per rank)" in report and "x steady (after 2 samples per rank)" in report
    assert "-m torch.distributed.run --standalone --nproc-per-node 2 -m divprune_video bench run" in report
    assert all(f"{name}={value}" in report for name, value in MULTICAST_OFF.items())
    assert "PYTHONPATH=" in report and "torch " in report and "CPU" in report


def _run_folder(tmp_path, name, responses):
    """A results folder as a run leaves it: samples.jsonl and summary.json."""
    folder = tmp_path / name
    folder.mkdir()
    records = [
        {
            "id": f"task/{i:04d}",
            "index": i,
            "response": response,
            "parsed": response[:1],
            "correct": False,
            "timings": {"generate": 0.1 * (i + 1)},
        }
        for i, response in enumerate(responses)
    ]
    write_jsonl_atomic(folder / SAMPLES_FILE, records)
    summary = {
        "overall": 50.0,
        "counts": {"samples": len(records)},
        "config": {"world_size": 1},
        "timings": {},
        "versions": {},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_compare_results_finds_planted_differences(tmp_path):
    reference = _run_folder(tmp_path, "reference", ["A", "B", "C"])
    same = _run_folder(tmp_path, "same", ["A", "B", "C"])
    assert compare_results(reference, same).identical  # timings alone may differ: they do not count

    changed = _run_folder(tmp_path, "changed", ["A", "D", "C"])
    summary = json.loads((changed / "summary.json").read_text())
    summary["overall"], summary["config"]["world_size"] = 33.3, 2  # world size is expected to differ
    (changed / "summary.json").write_text(json.dumps(summary))
    comparison = compare_results(reference, changed)
    assert not comparison.identical
    assert comparison.differences == [
        'sample task/0001.parsed: "B" != "D"',
        'sample task/0001.response: "B" != "D"',
        "summary.overall: 50.0 != 33.3",
    ]
    assert "3 difference(s)" in comparison.summary_text()

    # A sample counted twice and one missing, and a shard left unmerged.
    doubled = _run_folder(tmp_path, "doubled", ["A", "B"])
    records = read_records(doubled / SAMPLES_FILE)
    write_jsonl_atomic(doubled / SAMPLES_FILE, records + [records[0]])
    shutil.copy(doubled / SAMPLES_FILE, doubled / "samples.rank1.jsonl")
    found = compare_results(reference, doubled).differences
    assert any("sample task/0000 appears 2 times" in line for line in found)
    assert "1 sample(s) only in the reference: task/0002" in found
    assert any("unmerged shard files ['samples.rank1.jsonl']" in line for line in found)


@pytest.mark.parametrize(
    "benchmark, samples, tasks",
    [("mvbench", 64, 16), ("mvbench", 16, 16), ("mlvu", 14, 7), ("videomme", 9, 3), ("videomme", 4, 4)],
)
def test_fixture_sets_have_exactly_the_samples_asked(tmp_path, benchmark, samples, tasks):
    fixture = write_fixture_set(benchmark, tmp_path, samples, num_frames=4)
    loaded = get_benchmark(benchmark)(tmp_path, BenchmarkOptions()).load(fixture.tasks)
    assert len(fixture.questions) == len(loaded) == samples
    distinct = {s.task for s in loaded} if benchmark != "videomme" else {s.video for s in loaded}
    assert len(distinct) == tasks
    assert all(s.video_path is not None for s in loaded)


def test_fixture_set_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_samples must be a positive int; got 0"):
        write_fixture_set("mvbench", tmp_path, 0)
    with pytest.raises(ValueError, match="unknown benchmark 'egoschema'; registered: mlvu, mvbench, videomme"):
        write_fixture_set("egoschema", tmp_path, 4)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"nproc": 0}, "--nproc must be a positive integer; got 0"),
        ({"samples": 1, "nproc": 2}, "--samples 1 is fewer than --nproc 2"),
        ({"samples": 8, "kill_after": 8}, "--kill-after 8 must be below --samples 8"),
        ({"model": "random-7b"}, "--model random-7b needs CUDA GPUs"),
        ({"benchmark": "egoschema"}, "--benchmark must be one of mlvu, mvbench, videomme"),
        ({"keep_ratios": (1.5,)}, "keep_ratio must be in"),
        ({"method": "divprun"}, "unknown method 'divprun'"),
        ({"dtype": "float8"}, "--dtype must be one of"),
    ],
)
def test_scaling_options_are_checked(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        ScalingOptions(workdir=tmp_path, **changes).resolved(cuda_devices=0)


def test_scaling_defaults_follow_the_devices(tmp_path):
    cpu = ScalingOptions(workdir=tmp_path).resolved(cuda_devices=0)
    assert (cpu.nproc, cpu.samples, cpu.kill_after, cpu.dtype) == (2, 64, 16, None)
    gpus = ScalingOptions(workdir=tmp_path, model="random-7b").resolved(cuda_devices=4)
    assert (gpus.nproc, gpus.samples, gpus.kill_after, gpus.dtype) == (4, 16, 4, "float16")
    with pytest.raises(ValueError, match="--nproc 3 asks for more processes than the 2 visible CUDA GPU"):
        ScalingOptions(workdir=tmp_path, nproc=3).resolved(cuda_devices=2)
    assert "--no-kill-test" in ScalingOptions(workdir=tmp_path, kill_test=False).resolved(0).command_line()


def test_children_get_the_multicast_switches_and_this_checkout(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = child_environment(nproc=2)
    assert {name: env[name] for name in MULTICAST_OFF} == MULTICAST_OFF
    checkout, rest = env["PYTHONPATH"].split(":", 1)
    assert (Path(checkout) / "divprune_video" / "eval" / "scaling.py").is_file()
    assert rest == "/elsewhere" and int(env["OMP_NUM_THREADS"]) >= 1


def test_bad_option_is_one_line_and_exit_code_2(tmp_path, capsys):
    pytest.importorskip("av")  # the command checks for PyAV before its options
    assert main(["bench", "scaling", "--samples", "4", "--kill-after", "4", "--workdir", str(tmp_path)]) == 2
    assert "error: --kill-after 4 must be below --samples 4" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # nothing was written before the options were checked


def test_random_7b_tokenizer_decodes_every_id_and_tokenizes_prompts_as_before():
    from transformers import AutoTokenizer

    from divprune_video.models.presets import full_vocabulary_tokenizer, tiny_model_path

    tiny = AutoTokenizer.from_pretrained(tiny_model_path())
    grown = full_vocabulary_tokenizer(32064)
    prompt = tiny.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Question:Who?"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert len(grown) == 32064 and grown(prompt)["input_ids"] == tiny(prompt)["input_ids"]
    assert grown.convert_tokens_to_ids("<video>") == tiny.convert_tokens_to_ids("<video>")
    assert grown.decode([31999, 32063, grown.eos_token_id], skip_special_tokens=True) == "<w31999><w32063>"


def test_random_7b_needs_cuda():
    from divprune_video.models.presets import random_llava_next_video_7b

    with pytest.raises(ValueError, match="the random-weight LLaVA-NeXT-Video-7B needs a CUDA device"):
        random_llava_next_video_7b("cpu")


def test_steady_rate_leaves_out_each_ranks_warm_up():
    from divprune_video.eval.scaling_report import steady_rate

    # Rank 0: slow first two samples, then one every 0.5 s; rank 1 the same pattern, ending later.
    ranks = [[3.0, 4.0, 4.5, 5.0, 5.5], [3.5, 4.2, 4.8, 5.4, 6.2]]
    assert steady_rate(ranks, warmup=2) == pytest.approx(6 / 2.0)  # 3 + 3 samples over rank 1's 4.2 -> 6.2
    assert steady_rate(ranks, warmup=0) == pytest.approx(10 / 6.2)
    assert steady_rate([[1.0, 2.0], [1.0, 2.0, 3.0]], warmup=2) is None
