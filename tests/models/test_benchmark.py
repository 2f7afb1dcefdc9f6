"""``divprune-video bench-model``: the CPU smoke test of the GPU benchmark, for every family."""

import re

import pytest

from divprune_video.cli import main


@pytest.mark.parametrize(
    "model_type, tokens",
    [
        ("llava_next_video", 32),  # two frames, each resized to 56 px: 16 tokens
        ("llava_onevision", 18),  # two frames of 9 tokens
        ("qwen2_5_vl", 16),  # one frame pair kept at 112 px: (112 / 28) ** 2
        ("qwen3_vl", 9),  # one frame pair: 112 px -> 96 px under the video's pixel budget, (96 / 32) ** 2
    ],
)
def test_tiny_benchmark_prints_one_row_per_configuration(capsys, model_type, tokens):
    assert (
        main(
            [
                "bench-model",
                "--tiny",
                "--model-type",
                model_type,
                "--frames",
                "2",
                "--keep",
                "0.5,0.25",
                "--prune-layers",
                "0,2",
                "--frame-size",
                "112",
            ]
        )
        == 0
    )
    output = capsys.readouterr().out
    tables = [
        [line.split("|") for line in block.splitlines() if re.match(r"\| 2 \|", line)] for block in output.split("\n\n")
    ]
    rows, decoding, shared = [table for table in tables if table]
    assert len(rows) == 2 + 2 * 2
    plain, unpruned = rows[0], rows[1]
    assert plain[2].strip() == "plain transformers" and unpruned[2].strip() == "divprune-video"
    assert plain[4].strip() == unpruned[4].strip() == "-" and plain[6].strip() == unpruned[6].strip() == str(tokens)
    assert plain[11].strip() == "1.00x" and plain[12].strip() == "-"
    assert unpruned[12].strip() == unpruned[13].strip() == "1.00x"
    kept = sorted(int(row[6]) for row in rows[2:])
    assert kept == sorted([tokens // 2] * 2 + [round(tokens / 4)] * 2)
    assert "TTFT vs plain" in output and "select share of TTFT" in output
    # Decoding: unpruned and the smallest keep ratio at each prune layer, generate() then the static decoder, whose
    # greedy tokens equal generate()'s on both prompts; a later question on a shared prefill answers the same.
    assert [row[2].strip() for row in decoding] == ["unpruned"] * 2 + ["divprune 25%, layer 0"] * 2 + [
        "divprune 25%, layer 2"
    ] * 2
    assert [row[6].strip() for row in decoding[1::2]] == ["2/2"] * 3
    assert all(float(row[4]) > 0 for row in decoding)
    assert [row[7].strip() for row in shared] == ["2/2"] * 3 and all(float(row[4]) > 0 for row in shared)


def test_bad_options_are_refused_before_building_a_model(capsys):
    with pytest.raises(ValueError, match="keep_ratio"):
        main(["bench-model", "--tiny", "--keep", "1.5"])
    with pytest.raises(SystemExit):
        main(["bench-model", "--tiny", "--frames", "many"])
    with pytest.raises(ValueError, match="no model family for model_type 'gpt2'"):
        main(["bench-model", "--tiny", "--model-type", "gpt2"])
