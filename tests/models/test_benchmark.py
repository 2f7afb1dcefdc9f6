"""``divprune-video bench-model``: the CPU smoke test of the GPU benchmark, and the 7B configuration it builds."""

import re

from divprune_video.cli import main
from divprune_video.models.benchmark import llava_next_video_7b_config


def test_tiny_benchmark_prints_one_row_per_configuration(capsys):
    assert main(["bench-model", "--tiny", "--frames", "2", "--keep", "0.5,0.25", "--prune-layers", "0,2"]) == 0
    output = capsys.readouterr().out
    rows = [line for line in output.splitlines() if re.match(r"\| 2 \|", line)]
    assert len(rows) == 1 + 2 * 2
    unpruned = rows[0].split("|")
    assert unpruned[3].strip() == "-" and unpruned[5].strip() == "32"
    assert unpruned[10].strip() == unpruned[11].strip() == "1.00x"
    kept = sorted(int(row.split("|")[5]) for row in rows[1:])
    assert kept == [8, 8, 16, 16]
    assert "TTFT vs unpruned" in output and "select share of TTFT" in output


def test_bad_options_are_refused_before_building_a_model(capsys):
    import pytest

    with pytest.raises(ValueError, match="keep_ratio"):
        main(["bench-model", "--tiny", "--keep", "1.5"])
    with pytest.raises(SystemExit):
        main(["bench-model", "--tiny", "--frames", "many"])


def test_the_7b_configuration_has_the_published_shape():
    config = llava_next_video_7b_config()
    text, vision = config.text_config, config.vision_config
    shape = (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.vocab_size)
    assert shape == (4096, 32, 32, 32064)
    assert text.intermediate_size == 11008 and text.rope_parameters["rope_type"] == "linear"
    assert (vision.image_size, vision.patch_size, vision.num_hidden_layers) == (336, 14, 24)
    tokens_per_frame = (vision.image_size // vision.patch_size // config.spatial_pool_stride) ** 2
    assert tokens_per_frame == 144 and config.video_token_id == 32000
