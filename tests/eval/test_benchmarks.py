"""Readers of the released layouts, prompts, and the errors for broken or incomplete data."""

import json
import shutil

import pyarrow
import pyarrow.parquet as pq
import pytest

from divprune_video.eval import AnnotationError, BenchmarkOptions, MissingVideoError, get_benchmark, mvbench, videomme
from divprune_video.eval.fixtures import write_tiny_video
from divprune_video.testing import write_mlvu_fixture, write_mvbench_fixture, write_videomme_fixture

# --- MVBench -------------------------------------------------------------------------------------------------------


def test_mvbench_reads_every_task_in_lmms_eval_order(mvbench_data):
    root, questions = mvbench_data
    samples = get_benchmark("mvbench")(root).load()
    assert [s.task for s in samples] == [q.task for q in questions]
    assert list(dict.fromkeys(s.task for s in samples)) == list(mvbench.TASKS)
    assert [s.gold for s in samples] == [q.gold for q in questions]
    assert all(s.video_path is not None and s.video_path.exists() for s in samples)
    assert len({s.id for s in samples}) == len(samples)


def test_mvbench_prompt_is_lmms_evals(mvbench_data):
    root, _ = mvbench_data
    sample = get_benchmark("mvbench")(root).load(tasks=["moving_count"])[0]
    options = "".join(f"({letter}) {option}\n" for letter, option in zip("ABCDE", sample.options))
    assert sample.prompt == f"Question:{sample.question}\nOption:\n{options}Only give the best option.\n"


def test_mvbench_time_bounds_and_frame_folders(mvbench_data):
    root, _ = mvbench_data
    samples = {s.task: s for s in get_benchmark("mvbench")(root).load(limit=1)}
    assert len(samples) == 20  # --limit is per task, as lmms-eval applies it to each task of the group
    assert samples["action_sequence"].fields["start"] == 0.25 and samples["action_sequence"].fields["end"] == 1.0
    assert "start" not in samples["moving_count"].fields
    assert samples["episodic_reasoning"].video_path.is_dir()
    # The sample says which frames to read: a frame folder's rate, and the bounds only when asked for (lmms-eval
    # ignores them).
    assert samples["episodic_reasoning"].frame_rate == 3.0 and samples["moving_count"].frame_rate is None
    assert all(sample.window is None for sample in samples.values())
    bounded = {s.task: s for s in get_benchmark("mvbench")(root, BenchmarkOptions(time_bounds=True)).load(limit=1)}
    assert bounded["action_sequence"].window == (0.25, 1.0) and bounded["moving_count"].window is None


def test_mvbench_finds_videos_in_the_release_tree_and_data0613(tmp_path):
    write_mvbench_fixture(tmp_path, tasks=["moving_count", "action_antonym"], questions_per_task=1)
    (tmp_path / "data0613").mkdir()
    shutil.move(tmp_path / "clevrer", tmp_path / "data0613" / "clevrer")
    (tmp_path / "video").mkdir()
    shutil.move(tmp_path / "ssv2_video_mp4", tmp_path / "video" / "ssv2_video_mp4")
    samples = get_benchmark("mvbench")(tmp_path).load(tasks=["moving_count", "action_antonym"])
    assert [s.video_path.relative_to(tmp_path).parts[0] for s in samples] == ["data0613", "video"]


def test_mvbench_extra_fields_are_logged(tmp_path, caplog):
    write_mvbench_fixture(tmp_path, tasks=["action_count"], questions_per_task=1)
    path = tmp_path / "json" / "action_count.json"
    records = json.loads(path.read_text())
    records[0]["accurate_start"] = 1.0
    path.write_text(json.dumps(records))
    assert len(get_benchmark("mvbench")(tmp_path).load(tasks=["action_count"])) == 1
    assert f"{path}: fields ['accurate_start'] are not used" in caplog.text


def test_mvbench_unknown_task_names_the_valid_ones(mvbench_data):
    root, _ = mvbench_data
    with pytest.raises(ValueError, match="egocentric_navigation"):
        get_benchmark("mvbench")(root).load(tasks=["no_such_task"])


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "annotation file not found"),
        ("{not json", "cannot read annotation file"),
        (json.dumps({"video": "x"}), "expected a JSON list"),
        (json.dumps([{"video": "x.mp4", "question": "q", "candidates": ["a", "b"]}]), r"record 0: missing field"),
        (
            json.dumps([{"video": "x.mp4", "question": "q", "candidates": ["a", "b"], "answer": "c"}]),
            "record 0: answer 'c' is not one of the candidates",
        ),
        (json.dumps([{"video": "x.mp4", "question": "q", "candidates": "a", "answer": "a"}]), "non-empty list"),
    ],
)
def test_mvbench_bad_annotations_name_the_file(tmp_path, content, message):
    write_mvbench_fixture(tmp_path, tasks=["action_count"], questions_per_task=1)
    path = tmp_path / "json" / "action_count.json"
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    with pytest.raises(AnnotationError, match=message) as error:
        get_benchmark("mvbench")(tmp_path).load(tasks=["action_count"])
    assert str(path) in str(error.value)


def test_missing_videos_raise_or_become_sample_errors(tmp_path):
    write_mvbench_fixture(tmp_path, tasks=["action_count"], questions_per_task=3, missing_videos=["action_count_1.mp4"])
    bench = get_benchmark("mvbench")(tmp_path)
    with pytest.raises(MissingVideoError, match="perception/videos/action_count_1.mp4"):
        bench.load(tasks=["action_count"])
    samples = bench.load(tasks=["action_count"], skip_missing=True)
    assert [s.error is not None for s in samples] == [False, True, False]
    assert "action_count_1.mp4" in samples[1].error
    assert all(s.error is None for s in bench.load(tasks=["action_count"], require_videos=False))
    report = bench.check()
    assert not report.ok
    assert report.tasks["action_count"]["missing"] == [str(tmp_path / "perception/videos/action_count_1.mp4")]
    assert "action_count_1.mp4" in report.format()


def test_check_reports_a_complete_mvbench(mvbench_data):
    root, _ = mvbench_data
    report = get_benchmark("mvbench")(root).check()
    assert report.ok and len(report.tasks) == 20
    assert all(info["questions"] == 2 and not info["missing"] for info in report.tasks.values())


# --- Video-MME ------------------------------------------------------------------------------------------------------


def test_videomme_reads_the_parquet(videomme_data):
    root, questions = videomme_data
    samples = get_benchmark("videomme")(root).load()
    assert [(s.video, s.question, s.gold) for s in samples] == [(q.video, q.question, q.gold) for q in questions]
    assert {s.task for s in samples} == set(videomme.DURATIONS)
    assert [s.task for s in get_benchmark("videomme")(root).load(tasks=["long"])] == ["long"] * 6


@pytest.mark.parametrize(
    "variant,post",
    [
        ("default", "\nAnswer with the option's letter from the given choices directly."),
        ("llava_vid", "The best answer is:"),
    ],
)
def test_videomme_prompt_without_subtitles(videomme_data, variant, post):
    root, _ = videomme_data
    sample = get_benchmark("videomme")(root, BenchmarkOptions(prompt_variant=variant)).load(limit=1)[0]
    assert sample.prompt == (
        "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
        "Respond with only the letter (A, B, C, or D) of the correct option.\n"
        f"{sample.question}\n" + "\n".join(sample.options) + "\n" + post
    )


def test_videomme_subtitle_prompt(videomme_data):
    root, _ = videomme_data
    bench = get_benchmark("videomme")(root, BenchmarkOptions(subtitles=True, subtitle_frames=2))
    samples = bench.load()
    assert all(s.prompt is None for s in samples)  # built when prepared: it needs the video
    first = samples[0]
    prompt = bench.build_prompt(first)
    # 16 frames at 8 fps, four 0.5 s subtitles; 2 sampled frames (0 and 15) fall in the first and the last.
    expected_subtitles = f"line 0 of {first.video}\nline 3 of {first.video}"
    assert prompt.startswith("This video's subtitles are listed below: \n" + expected_subtitles + "\nSelect the ")
    assert prompt.endswith("\n".join(first.options) + "\nThe best answer is:")
    without_srt = next(s for s in samples if s.video == "vid005xyz")
    assert "This video's subtitles are listed below: \nNo subtitles available\n" in bench.build_prompt(without_srt)


def test_videomme_empty_subtitle_file_gives_empty_text(tmp_path):
    # lmms-eval only says "No subtitles available" when the .srt file is missing, not when it is empty.
    write_videomme_fixture(tmp_path, num_videos=1, questions_per_video=1)
    (tmp_path / "subtitle" / "vid000xyz.srt").write_text("")
    bench = get_benchmark("videomme")(tmp_path, BenchmarkOptions(subtitles=True))
    assert bench.build_prompt(bench.load()[0]).startswith("This video's subtitles are listed below: \n\nSelect")


def test_videomme_video_suffix_fallback(tmp_path):
    write_videomme_fixture(tmp_path, num_videos=2, questions_per_video=1, missing_videos=["vid001xyz"])
    write_tiny_video(tmp_path / "data" / "vid001xyz.mkv")
    samples = get_benchmark("videomme")(tmp_path).load()
    assert samples[1].video_path.name == "vid001xyz.mkv"


@pytest.mark.parametrize(
    "column,value,message",
    [
        ("duration", "very long", "unknown duration 'very long'"),
        ("task_type", "Juggling", "unknown task_type 'Juggling'"),
        ("answer", "", "'answer' must be a non-empty string"),
    ],
)
def test_videomme_bad_values_name_file_and_row(tmp_path, column, value, message):
    write_videomme_fixture(tmp_path, num_videos=2, questions_per_video=1)
    path = tmp_path / "videomme" / "test-00000-of-00001.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[1][column] = value
    pq.write_table(pyarrow.Table.from_pylist(rows), path)
    with pytest.raises(AnnotationError, match=message) as error:
        get_benchmark("videomme")(tmp_path).load()
    assert f"{path} row 1" in str(error.value)


def test_videomme_missing_column_and_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match="no annotation file under"):
        get_benchmark("videomme")(tmp_path).load()
    (tmp_path / "videomme").mkdir()
    path = tmp_path / "videomme" / "test-00000-of-00001.parquet"
    pq.write_table(pyarrow.Table.from_pylist([{"videoID": "x", "question": "q"}]), path)
    with pytest.raises(AnnotationError, match=r"missing column\(s\)"):
        get_benchmark("videomme")(tmp_path).load()


def test_videomme_check_counts_subtitles(videomme_data):
    root, _ = videomme_data
    report = get_benchmark("videomme")(root).check()
    assert report.ok and report.extras["subtitles"].startswith("4/6")


# --- MLVU -----------------------------------------------------------------------------------------------------------


def test_mlvu_dev_prompt_and_fields(mlvu_data):
    root, questions = mlvu_data
    samples = get_benchmark("mlvu")(root).load()
    assert [s.gold for s in samples] == [q.gold for q in questions]
    assert samples[0].question.endswith("(D) " + samples[0].options[3] + "\n")  # options inside the question
    assert samples[0].prompt == samples[0].question + "\nOnly give the best option.\nBest option: ("


def test_mlvu_test_split_prompt_is_the_question(tmp_path):
    write_mlvu_fixture(tmp_path, split="test", questions_per_task=1)
    samples = get_benchmark("mlvu")(tmp_path, BenchmarkOptions(split="test")).load()
    assert {s.task for s in samples} == {
        "anomaly_reco",
        "count",
        "ego",
        "needleQA",
        "order",
        "plotQA",
        "sportsQA",
        "topic_reasoning",
        "tutorialQA",
    }
    assert all(s.prompt == s.question for s in samples)


def test_mlvu_unknown_task_type_and_missing_video(tmp_path):
    write_mlvu_fixture(tmp_path, questions_per_task=1, missing_videos=["ego_0.mp4"])
    with pytest.raises(MissingVideoError, match="ego_0.mp4"):
        get_benchmark("mlvu")(tmp_path).load()
    with pytest.raises(ValueError, match="sportsQA"):  # a test-split task on the dev split
        get_benchmark("mlvu")(tmp_path).load(tasks=["sportsQA"])
    path = tmp_path / "mlvu" / "test-00000-of-00001.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[0]["task_type"] = "subPlot"
    pq.write_table(pyarrow.Table.from_pylist(rows), path)
    with pytest.raises(AnnotationError, match=f"{path} row 0: unknown task_type 'subPlot'"):
        get_benchmark("mlvu")(tmp_path).load()


def test_videomme_prompt_variant_follows_the_model_family(tmp_path):
    """lmms-eval's videomme.yaml has a ``qwen3_vl`` entry (its own format); other families get the default."""
    from divprune_video.eval.config import config_from_mapping, family_prompt_variant
    from divprune_video.eval.videomme import variant_prompt
    from divprune_video.testing import save_tiny_model

    qwen3 = save_tiny_model(tmp_path / "qwen3", "qwen3_vl")
    assert family_prompt_variant(str(qwen3)) == "qwen3_vl"
    assert family_prompt_variant("tiny") == family_prompt_variant("replay:x.jsonl") == "default"
    assert family_prompt_variant(str(tmp_path / "missing")) == "default"
    settings = {"benchmark": "videomme", "data_root": str(tmp_path), "output": str(tmp_path / "out")}
    assert config_from_mapping({**settings, "model": str(qwen3)}).options.prompt_variant == "qwen3_vl"
    explicit = config_from_mapping({**settings, "model": str(qwen3), "prompt_variant": "default"})
    assert explicit.options.prompt_variant == "default"
    assert (
        variant_prompt("Why?", ["A. x", "B. y"], "qwen3_vl")
        == "Question: Why?\nOptions:\nA. x\nB. y\nAnswer with the option letter only."
    )
