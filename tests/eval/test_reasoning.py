"""Reasoning blocks removed before parsing, as lmms-eval's command line does (``--reasoning_tags`` default,
``strip_reasoning_tags`` at commit 75571cfe): lmms-eval's own test cases, the rules' edge cases, and every benchmark
through the runner."""

import pytest

from divprune_video.eval import RunConfig, get_benchmark, run_benchmark
from divprune_video.eval.mcq import extract_mcq_answer, mvbench_extract
from divprune_video.eval.reasoning import REASONING_TAGS, strip_reasoning_blocks
from divprune_video.eval.results import read_records
from divprune_video.testing import write_replay_file


@pytest.mark.parametrize(
    "response,expected",
    [
        # lmms-eval's test/eval/test_reasoning.py
        ("<think>\nreasoning\n</think>\n\nYes", "Yes"),
        ("reasoning from completion only\n</think>\n\nNo", "No"),  # the template put <think> in the prompt
        # lmms-eval's test/eval/test_strip_thinking_filter.py (same function behind the filter)
        ("<think>long chain of reasoning</think>\n\nParis", "Paris"),
        ("Just a plain answer.", "Just a plain answer."),
        # the rules on the edge cases
        ("<think>unfinished (A) because", "<think>unfinished (A) because"),  # unclosed: left as it is
        ("B <think>unfinished", "B <think>unfinished"),
        ("<think>a <think>b</think> c</think> D", "D"),  # nested: first cut, then the text after the last closing tag
        ("<think>x</think>A<think>y</think>", "A"),  # every block
        ("</think>early<think>x</think>B", "earlyB"),  # a closing tag before the opening one is not a block
        ("<THINK>x</THINK> C", "<THINK>x</THINK> C"),  # case-sensitive
        ("<analysis>the answer is (A)</analysis> B", "B"),  # lmms-eval's second default pair
        ("<analysis><think>x</think></analysis>C", "C"),
        ("<think><analysis>x</think></analysis>C", "C"),  # pairs in order: <think> first, then the stray </analysis>
        ("  \n\t ", ""),  # always stripped: whitespace-only becomes empty
        ("\n A \n", "A"),
        ("", ""),
    ],
)
def test_strip_reasoning_blocks_as_lmms_eval(response, expected):
    assert strip_reasoning_blocks(response) == expected


def test_default_tags_are_lmms_evals_command_line_default():
    assert REASONING_TAGS == (("<think>", "</think>"), ("<analysis>", "</analysis>"))


def test_a_decoy_answer_inside_the_block_is_not_parsed():
    # lmms-eval's decoy case: the block holds "answer is (A)", the real answer after it is (C).
    response = "<think>maybe the answer is (A)?</think> The answer is (C)"
    assert extract_mcq_answer(strip_reasoning_blocks(response), "ABCD") == "C"
    # Where the removal changes the letter: mcq_acc takes the first standalone letter, extract_mcq_answer a letter
    # that starts the response.
    assert mvbench_extract(strip_reasoning_blocks("<think>It is A or C</think> C")) == "C"
    assert mvbench_extract("<think>It is A or C</think> C") == "A"
    prefilled = "A</think> The best answer is C"  # the opening tag was in the prompt
    assert extract_mcq_answer(strip_reasoning_blocks(prefilled), "ABCD") == "C"
    assert extract_mcq_answer(prefilled, "ABCD") == "A"


@pytest.mark.parametrize("name", ["mvbench", "videomme", "mlvu"])
def test_every_benchmark_parses_the_response_without_its_reasoning(replay_files, tmp_path, name):
    root, questions, _path, _responses = replay_files[name]
    wrong = {q.gold: "B" if q.gold != "B" else "C" for q in questions}
    responses = [f"<think>It is not {q.gold}. Answer: ({wrong[q.gold]})</think>\n{q.gold}" for q in questions]
    responses[0] = "  \n "  # whitespace only: empty after the filter
    replay = write_replay_file(
        tmp_path / "thinking.jsonl",
        [
            {"video": q.video, "question": q.question, "task": q.task, "response": r}
            for q, r in zip(questions, responses)
        ],
    )
    result = run_benchmark(
        RunConfig(benchmark=name, data_root=root, model=f"replay:{replay}", output=tmp_path / "out"), progress=False
    )
    records = read_records(tmp_path / "out" / "replay" / "samples.jsonl")
    assert [r["response"] for r in records] == responses  # the raw text is kept
    assert [r["filtered_response"] for r in records[1:]] == [q.gold for q in questions[1:]]
    assert [r["parsed"] for r in records[1:]] == [q.gold for q in questions[1:]]
    assert all(r["correct"] for r in records[1:]) and records[0]["filtered_response"] == ""
    summary = result.summaries["unpruned"]
    assert summary["counts"]["empty_responses"] == 1
    assert summary["response_filter"]["reasoning_tags"] == [["<think>", "</think>"], ["<analysis>", "</analysis>"]]
    if name == "mvbench":  # empty after the filter: not answered, as lmms-eval's aggregation counts it
        task = questions[0].task
        assert summary["per_task"][task]["answered"] == summary["per_task"][task]["total"] - 1


def test_records_written_before_the_filter_are_scored_from_their_response(tmp_path):
    bench = get_benchmark("mvbench")(tmp_path)
    old = {"task": "action_count", "response": "", "correct": False, "error": None, "fields": {}}
    new = {**old, "response": " ", "filtered_response": ""}
    summary = bench.summarize([old, new, {**old, "response": "A", "correct": True}])
    assert summary["per_task"]["action_count"]["answered"] == 1
