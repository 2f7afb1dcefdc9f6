"""The headline numbers and breakdowns as lmms-eval aggregates them, on hand-made records."""

import itertools

import pytest

from divprune_video.eval import BenchmarkOptions, get_benchmark, mlvu, videomme


def record(task, response, correct, error=None, **fields):
    return {"task": task, "response": response, "correct": correct, "error": error, "fields": fields}


def test_mvbench_leaves_empty_responses_out_of_the_denominator(tmp_path):
    bench = get_benchmark("mvbench")(tmp_path)
    records = [
        record("action_count", "A", True),
        record("action_count", "", False),  # empty: not "answered" (lmms-eval's quirk)
        record("action_count", "C", False),
        record("action_count", "", False, error="missing video: x"),  # errors are counted, not scored
        record("moving_count", "B", True),
    ]
    summary = bench.summarize(records)
    assert summary["per_task"]["action_count"] == {
        "accuracy": 50.0,
        "plain_accuracy": pytest.approx(100 / 3),
        "correct": 1,
        "answered": 2,
        "total": 3,
        "errors": 1,
    }
    assert summary["per_task"]["moving_count"]["accuracy"] == 100.0
    assert summary["overall"] == 75.0  # mean over tasks
    assert summary["overall_plain"] == pytest.approx((100 / 3 + 100) / 2)
    assert summary["micro_accuracy"] == 50.0
    assert summary["counts"] == {
        "samples": 5,
        "scored": 4,
        "errors": 1,
        "empty_responses": 1,
        "correct": 2,
        "partial": 0,
    }


def test_mvbench_task_without_answers_scores_zero(tmp_path):
    summary = get_benchmark("mvbench")(tmp_path).summarize(
        [record("action_count", "", False), record("moving_count", "A", True)]
    )
    assert summary["per_task"]["action_count"]["accuracy"] == 0.0
    assert summary["overall"] == 50.0


def test_videomme_micro_accuracy_and_breakdowns(tmp_path):
    fields = dict(domain="Knowledge", sub_category="Law", task_type="OCR Problems")
    records = [
        record("short", "A", True, duration="short", **fields),
        record("short", "", False, duration="short", **fields),  # empty responses count as wrong here
        record(
            "long", "B", True, duration="long", **{**fields, "domain": "Multilingual", "sub_category": "Multilingual"}
        ),
        record("long", "x", False, error="boom", duration="long", **fields),
    ]
    summary = get_benchmark("videomme")(tmp_path).summarize(records)
    assert summary["overall"] == pytest.approx(200 / 3)
    assert summary["per_duration"] == {
        "short": {"accuracy": 50.0, "correct": 1, "total": 2},
        "long": {"accuracy": 100.0, "correct": 1, "total": 1},
    }
    assert summary["per_domain"]["Multilingual"]["total"] == 1
    assert summary["per_task_type"]["OCR Problems"]["total"] == 3
    assert summary["counts"]["errors"] == 1


def test_videomme_group_names_never_collide_as_substrings():
    # lmms-eval groups by `name in f"{duration}_{domain}_{sub_category}_{task_type}"`; exact grouping (ours) is
    # the same only if no name occurs inside another component of a key.
    columns = [videomme.DURATIONS, videomme.DOMAINS, videomme.SUB_CATEGORIES, videomme.TASK_TYPES]
    for parts in itertools.product(*columns):
        key = "_".join(parts)
        for _position, names in enumerate(columns):
            for name in names:
                assert (name in key) == (name in parts), (name, key)


def test_mlvu_m_avg_divides_by_every_task_type(tmp_path):
    records = [record("count", "A", True), record("count", "B", False), record("ego", "C", True)]
    summary = get_benchmark("mlvu")(tmp_path).summarize(records)
    assert summary["per_task"] == {
        "count": {"accuracy": 50.0, "correct": 1, "total": 2},
        "ego": {"accuracy": 100.0, "correct": 1, "total": 1},
    }
    assert summary["overall"] == pytest.approx(150 / 7)  # 7 dev task types, 5 of them without samples
    assert summary["overall_present_tasks"] == 75.0
    test_split = get_benchmark("mlvu")(tmp_path, BenchmarkOptions(split="test")).summarize(records)
    assert test_split["overall"] == pytest.approx(150 / 9)


def test_mlvu_task_types_never_collide_as_substrings():
    for names in mlvu.TASK_TYPES.values():
        for name, other in itertools.permutations(names, 2):
            assert name not in other


@pytest.mark.parametrize(
    "name,response,gold,expected",
    [
        ("videomme", "The answer is b", "B", False),  # extraction is case-sensitive
        ("videomme", "(B)", "B", True),
        ("mlvu", "B) the dog", "B", True),  # dev prompts end in "Best option: (" so answers look like this
        ("mlvu", "E", "E", False),  # lmms-eval extracts A-D only, also on the 6-option test split
        ("mvbench", "the answer is b", "B", True),
    ],
)
def test_is_correct(tmp_path, name, response, gold, expected):
    bench = get_benchmark(name)(tmp_path)
    assert bench.is_correct(response, bench.parse(response), gold) is expected
