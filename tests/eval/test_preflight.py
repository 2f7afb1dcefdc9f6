"""Settings that would fail every sample stop the run once, before any video is decoded, with a one-line error and
exit code 2, whatever --skip-missing says: a prune layer the decoder lacks, a method that needs a layer >= 1 at
layer 0, keep ratios and frame counts that cannot work, a sequence beyond the model's context, and (a net for the
rest) the same model failure on sample after sample."""

import types

import pytest

from divprune_video.cli import main
from divprune_video.eval import RunConfig, Variant, answerers, preflight, run_benchmark, runner
from divprune_video.eval.base import ConfigurationError
from divprune_video.eval.results import read_records

from .test_runner import FakeModel

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_adapter():
    from divprune_video.models import resolve_adapter

    return resolve_adapter(str(answerers.tiny_model_path()), device="cpu")


@pytest.fixture
def decoded(monkeypatch):
    """The samples the pipeline answerer decodes (it must decode none when the settings cannot work)."""
    calls = []
    original = answerers.PipelineAnswerer.decode
    monkeypatch.setattr(
        answerers.PipelineAnswerer, "decode", lambda self, sample: (calls.append(sample.id), original(self, sample))[1]
    )
    return calls


def bench(root, output, *flags):
    return [
        "bench",
        "mvbench",
        "--data-root",
        str(root),
        "--model",
        "tiny",
        "--tasks",
        "action_count",
        "--output",
        str(output),
        "--no-progress",
        "--skip-missing",
        *flags,
    ]


def one_line_error(capsys):
    """The error line (model loading may write its own progress to stderr before it)."""
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1 and errors[0] == lines[-1] and lines[-1].startswith("divprune-video bench: error: ")
    return lines[-1]


@pytest.mark.slow
def test_prune_layer_at_or_beyond_the_decoder_stops_before_decoding(mvbench_data, tmp_path, capsys, decoded):
    root, _ = mvbench_data
    assert main(bench(root, tmp_path, "--keep-ratio", "0.5", "--prune-layer", "4")) == 2
    assert "prune_layer 4 is at or beyond the model's 4 decoder layers" in one_line_error(capsys)
    assert decoded == [] and not read_records(tmp_path / "divprune-keep0.5-layer4" / "samples.jsonl")


@pytest.mark.slow
def test_a_sequence_beyond_the_context_stops_before_decoding(mvbench_data, tmp_path, capsys, decoded):
    root, _ = mvbench_data
    # The tiny model: 16 visual tokens per frame, 4096 positions; 300 frames make 4800 tokens unpruned.
    assert main(bench(root, tmp_path, "--keep-ratio", "1", "0.5", "--num-frames", "300")) == 2
    err = one_line_error(capsys)
    assert "variant unpruned: about" in err and "300 frames -> 4800 visual tokens" in err
    assert "exceed the model's context of 4096" in err and decoded == []
    # Fixing the setting in the same output folder is accepted: nothing was answered under the refused one.
    assert main(bench(root, tmp_path, "--keep-ratio", "1", "0.5", "--num-frames", "4", "--limit", "1")) == 0
    assert len(read_records(tmp_path / "unpruned" / "samples.jsonl")) == 1 and decoded == ["action_count/0000"]


def test_the_context_check_counts_kept_tokens_text_and_layers(tiny_adapter, mvbench_data):
    root, _ = mvbench_data
    variants = (Variant("divprune", 0.5), Variant("divprune", 0.5, prune_layer=2))
    config = RunConfig(
        benchmark="mvbench", data_root=root, model="tiny", output="/unused", num_frames=255, variants=variants[:1]
    )
    preflight.check_model_settings(tiny_adapter, config, ["Question: what?"])  # 2040 kept of 4080: fits
    config.variants = variants
    with pytest.raises(ConfigurationError, match="divprune-keep0.5-layer2: about 41"):
        preflight.check_model_settings(tiny_adapter, config, ["Question: what?"])  # layers 1-2 see all 4080
    config.variants, config.num_frames = variants[:1], 120
    with pytest.raises(ConfigurationError, match="exceed the model's context"):
        preflight.check_model_settings(tiny_adapter, config, ["word " * 3500])  # a long prompt counts too
    assert preflight.visual_tokens(tiny_adapter, 32) == (512, 0)


def test_context_length_follows_rope_scaling():
    from divprune_video.models.llava_next_video.presets import reference_config

    config = reference_config()  # LLaVA-NeXT-Video-7B: 4096 positions, linear RoPE factor 2
    assert preflight.context_length(types.SimpleNamespace(config=config)) == 8192
    text = types.SimpleNamespace(max_position_embeddings=32768, rope_scaling=None)
    assert preflight.context_length(types.SimpleNamespace(config=types.SimpleNamespace(text_config=text))) == 32768


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--method", "attention", "--keep-ratio", "0.5"], "variant attention-keep0.5: method='attention'"),
        (["--keep-ratio", "0"], "keep_ratio must be in (0, 1], got 0.0"),
        (["--keep-ratio", "nan"], "keep_ratio must be in (0, 1], got nan"),
        (["--keep-ratio", "1.5"], "keep_ratio must be in (0, 1], got 1.5"),
        (["--num-frames", "0"], "num_frames must be a positive integer, got 0"),
        (["--num-frames", "8", "--keyframes", "12"], "keyframes must be between 1 and num_frames (8)"),
    ],
)
def test_settings_that_cannot_work_stop_before_the_model_loads(
    mvbench_data, tmp_path, capsys, monkeypatch, flags, message
):
    root, _ = mvbench_data
    monkeypatch.setattr(runner, "make_answerer", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(bench(root, tmp_path / "out", *flags)) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


class FailingModel(FakeModel):
    def __init__(self, messages):
        super().__init__()
        self.messages = messages

    def answer(self, prepared, variants, seed):
        raise RuntimeError(self.messages(prepared.sample))


def test_the_same_model_failure_on_every_sample_is_not_a_per_sample_error(mvbench_data, tmp_path):
    root, _ = mvbench_data
    config = RunConfig(benchmark="mvbench", data_root=root, model="fake", output=tmp_path, skip_missing=True)
    with pytest.raises(ConfigurationError, match="3 samples in a row failed with the same error.*index out of"):
        run_benchmark(config, answerer=FailingModel(lambda sample: "index out of range"), progress=False)
    assert len(read_records(tmp_path / "unpruned" / "samples.jsonl")) == 2
    # failures that differ are per-sample errors (a few bad videos), recorded and counted
    config.overwrite = True
    result = run_benchmark(config, answerer=FailingModel(lambda sample: f"bad frame in {sample.id}"), progress=False)
    assert result.summaries["unpruned"]["counts"]["errors"] == 40


def test_the_same_decoding_failure_on_every_sample_stops_the_run(mvbench_data, tmp_path):
    root, _ = mvbench_data

    class NoDecoder(FakeModel):  # what a missing video dependency looks like: the same error for every file
        def decode(self, sample):
            raise RuntimeError("the video extra is not installed: pip install 'divprune-video[video]'")

    config = RunConfig(benchmark="mvbench", data_root=root, model="fake", output=tmp_path, skip_missing=True)
    with pytest.raises(ConfigurationError, match="3 samples in a row failed.*pip install"):
        run_benchmark(config, answerer=NoDecoder(), progress=False)
    # videos that fail each in its own way are per-sample errors
    config.overwrite = True
    every_other = {f"{task}/0001" for task in ("action_sequence", "moving_count", "action_prediction")}
    result = run_benchmark(config, answerer=FakeModel(fail_on=every_other), progress=False)
    assert result.summaries["unpruned"]["counts"]["errors"] == 3


def test_a_configuration_error_from_the_model_is_never_a_per_sample_error(mvbench_data, tmp_path):
    root, _ = mvbench_data
    config = RunConfig(benchmark="mvbench", data_root=root, model="fake", output=tmp_path, skip_missing=True)

    class Misconfigured(FakeModel):
        def answer(self, prepared, variants, seed):
            raise ConfigurationError("no such layer")

    with pytest.raises(ConfigurationError, match="no such layer"):
        run_benchmark(config, answerer=Misconfigured(), progress=False)
    assert read_records(tmp_path / "unpruned" / "samples.jsonl") == []


def test_tokens_that_follow_the_resolution_warn_where_large_frames_would_not_fit(tmp_path, mvbench_data, caplog):
    """Qwen-VL's tokens per frame follow each video's resolution: the run is stopped only when even its smallest
    frames cannot fit, and a warning names the variants that its largest frames would take past the context."""
    from divprune_video.models import resolve_adapter
    from divprune_video.testing import save_tiny_model

    adapter = resolve_adapter(str(save_tiny_model(tmp_path / "qwen", "qwen2_5_vl")), device="cpu")
    # The tiny checkpoint's pixel limits: 4 to 16 tokens per frame pair; its context is 4096 positions.
    assert preflight.visual_tokens(adapter, 2) == (4, 0)
    assert preflight.visual_tokens(adapter, 2, preflight._LARGE_PROBE_SIZE) == (16, 0)
    root, _ = mvbench_data
    variants = (Variant("unpruned", 1.0), Variant("divprune", 0.2))
    config = RunConfig(
        benchmark="mvbench", data_root=root, model="tiny", output="/unused", num_frames=1000, variants=variants
    )
    with caplog.at_level("WARNING", logger="divprune_video.eval.preflight"):
        preflight.check_model_settings(adapter, config, ["Question: what?"])  # 2000 tokens at the smallest: fits
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1  # 8000 tokens unpruned at the largest size do not fit; 1600 kept of them do
    assert warnings[0].startswith("variant unpruned: videos at this model's largest frame size (1000 frames -> 8000")
    assert "more than its context of 4096" in warnings[0] and "give 2000 visual tokens" in warnings[0]
    config.num_frames = 2100  # 4200 tokens even at the smallest size: stopped
    with pytest.raises(ConfigurationError, match="variant unpruned: about 4"):
        preflight.check_model_settings(adapter, config, ["Question: what?"])


def test_tokens_of_one_input_size_give_no_warning(tiny_adapter, mvbench_data, caplog):
    root, _ = mvbench_data
    config = RunConfig(
        benchmark="mvbench",
        data_root=root,
        model="tiny",
        output="/unused",
        num_frames=200,
        variants=(Variant("unpruned", 1.0),),
    )
    assert preflight.visual_tokens(tiny_adapter, 1) == preflight.visual_tokens(
        tiny_adapter, 1, preflight._LARGE_PROBE_SIZE
    )
    with caplog.at_level("WARNING", logger="divprune_video.eval.preflight"):
        preflight.check_model_settings(tiny_adapter, config, ["Question: what?"])  # 3200 of 4096
    assert not [record for record in caplog.records if record.levelname == "WARNING"]
