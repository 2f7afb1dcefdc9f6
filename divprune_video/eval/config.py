"""Run configuration: what to evaluate (benchmark, data, model, frames) and the pruning variants one run shares its
decoded frames across; built from arguments or from a YAML file in ``pipelines/``."""

from __future__ import annotations

import dataclasses
import itertools
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..models.base import DEFAULT_MODEL, NO_PRUNING
from ..selection._validate import check_keep_ratio
from .answerers import REPLAY_PREFIX
from .base import BenchmarkOptions, benchmark_settings

DTYPES = (None, "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class Variant:
    """One pruning setting. ``method`` "none" (or ``keep_ratio`` 1) is the unpruned model; ``prune_layer`` None
    prunes before the LLM, K after LLM layer K."""

    method: str = NO_PRUNING
    keep_ratio: float = 1.0
    prune_layer: Optional[int] = None

    def __post_init__(self) -> None:
        try:
            check_keep_ratio(self.keep_ratio)
        except TypeError as error:  # a config's value of the wrong type is a bad value there
            raise ValueError(str(error)) from None
        if self.prune_layer is not None and (not _is_integer(self.prune_layer) or self.prune_layer < 0):
            raise ValueError(f"prune_layer must be an integer >= 0 or None, got {self.prune_layer!r}")
        if not isinstance(self.method, str):
            raise ValueError(f"method must be a string, got {self.method!r}")
        object.__setattr__(self, "keep_ratio", float(self.keep_ratio))
        if self.method == NO_PRUNING or self.keep_ratio == 1.0:
            object.__setattr__(self, "method", NO_PRUNING)
            object.__setattr__(self, "keep_ratio", 1.0)
            object.__setattr__(self, "prune_layer", None)
        else:
            self._check_pruning()

    def _check_pruning(self) -> None:
        """The model's own pruning settings must accept this variant (a method that needs a layer >= 1 at layer 0
        ...): checked here, before anything runs, rather than once per sample."""
        from ..models.base import PruningConfig
        from ..selection import available_methods

        if self.method not in available_methods():
            raise ValueError(
                f"unknown method {self.method!r}; expected {NO_PRUNING!r} or one of {', '.join(available_methods())}"
            )
        try:
            PruningConfig(keep_ratio=self.keep_ratio, method=self.method, prune_layer=self.prune_layer or 0)
        except (TypeError, ValueError) as error:
            raise ValueError(f"variant {self.name}: {error}") from None

    @property
    def pruned(self) -> bool:
        return self.method != NO_PRUNING

    @property
    def name(self) -> str:
        """A folder-safe name: ``unpruned``, ``divprune-keep0.15``, ``divprune-keep0.15-layer2``."""
        if not self.pruned:
            return "unpruned"
        layer = "" if self.prune_layer is None else f"-layer{self.prune_layer}"
        return f"{self.method}-keep{self.keep_ratio:g}{layer}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self)}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def variant_folder(model: str, variant_name: str) -> str:
    """The sub-folder of the output folder that holds a variant's results: its name, or for re-scored saved
    outputs ``replay`` (``replay-<name>`` when the run was given a pruning setting to file them under)."""
    if not model.startswith(REPLAY_PREFIX):
        return variant_name
    return "replay" if variant_name == "unpruned" else f"replay-{variant_name}"


def expand_variants(
    methods: Sequence[str], keep_ratios: Sequence[float], prune_layer: Optional[int] = None
) -> tuple[Variant, ...]:
    """Every method x keep ratio, unpruned settings folded into one, in the given order."""
    variants: list[Variant] = []
    for method, ratio in itertools.product(methods or [NO_PRUNING], keep_ratios or [1.0]):
        variant = Variant(method, ratio, prune_layer)
        if variant not in variants:
            variants.append(variant)
    return tuple(variants)


@dataclass
class RunConfig:
    """Everything a benchmark run needs. See ``divprune-video bench --help`` for each setting."""

    benchmark: str
    data_root: Path
    model: str
    output: Path
    variants: tuple[Variant, ...] = (Variant(),)
    num_frames: int = 32
    keyframes: Optional[int] = None
    tasks: Optional[tuple[str, ...]] = None
    limit: Optional[int] = None
    skip_missing: bool = False
    retry_errors: bool = False
    overwrite: bool = False
    seed: int = 0
    max_new_tokens: int = 16
    workers: int = 2
    prefetch: int = 4
    dtype: Optional[str] = None
    attn_implementation: Optional[str] = None
    strict_video: bool = False
    options: BenchmarkOptions = BenchmarkOptions()

    def __post_init__(self) -> None:
        self.data_root = Path(self.data_root).expanduser()
        self.output = Path(self.output).expanduser()
        self.variants = tuple(self.variants)
        if not self.variants:
            raise ValueError("at least one variant is needed")
        if len({variant.name for variant in self.variants}) != len(self.variants):
            raise ValueError(f"variants must differ, got {[variant.name for variant in self.variants]}")
        if self.tasks is not None:
            self.tasks = tuple(self.tasks)
        for name in ("num_frames", "max_new_tokens", "workers", "prefetch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {[d for d in DTYPES if d]} (or unset), got {self.dtype!r}")
        if self.keyframes is not None and not 1 <= int(self.keyframes) <= int(self.num_frames):
            raise ValueError(
                f"keyframes must be between 1 and num_frames ({self.num_frames}): they are chosen among "
                f"the num_frames sampled frames; got {self.keyframes}"
            )

    @property
    def is_replay(self) -> bool:
        """Whether the run re-scores saved outputs (``replay:FILE``) instead of running a model."""
        return self.model.startswith(REPLAY_PREFIX)

    def variant_dir(self, variant: Variant) -> Path:
        """Where a variant's results go: ``<output>/<variant folder>`` (:func:`variant_folder`), one layout for one
        variant or many, so a variant added later to an output folder finds the others' results where they are."""
        return self.output / variant_folder(self.model, variant.name)

    def variant_label(self, variant: Variant) -> str:
        """What a variant's numbers measure, for people: its name, or for a replay the file re-scored."""
        if not self.is_replay:
            return variant.name
        label = f"replay of {Path(self.model[len(REPLAY_PREFIX) :]).name}"
        return label if not variant.pruned else f"{label} (as {variant.name})"

    def fingerprint(self, variant: Variant) -> dict[str, Any]:
        """Settings that change answers or scores: a resumed run must match them (data paths, limits, workers
        and the like may change between runs)."""
        keys = (
            "benchmark",
            "model",
            "num_frames",
            "keyframes",
            "seed",
            "max_new_tokens",
            "dtype",
            "attn_implementation",
        )
        options = {key: value for key, value in self.options.as_settings().items() if key != "annotations"}
        # strict_video is recorded only when on, so runs from before the setting existed resume as non-strict runs.
        strict = {"strict_video": True} if self.strict_video else {}
        return {**{key: getattr(self, key) for key in keys}, **options, **strict, "variant": variant.to_dict()}

    def to_dict(self) -> dict[str, Any]:
        data = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("variants", "options")
        }
        data.update(self.options.as_settings())
        data["variants"] = [variant.to_dict() for variant in self.variants]
        return {key: str(value) if isinstance(value, Path) else value for key, value in data.items()}


_OPTION_KEYS = {f.name for f in dataclasses.fields(BenchmarkOptions)} - {"extra"}
_FILE_KEYS = (
    ({f.name for f in dataclasses.fields(RunConfig)} - {"options"})
    | _OPTION_KEYS
    | {"methods", "keep_ratios", "prune_layer", "method", "keep_ratio"}
)

# What each setting holds: (test, what is expected). Settings holding one value or a list take either.
_INTEGER = (_is_integer, "an integer")
_FLAG = (lambda value: isinstance(value, bool), "true or false")
_TEXT = (lambda value: isinstance(value, str), "a string")
_PATH = (lambda value: isinstance(value, (str, os.PathLike)), "a path")
_SETTING_KINDS: dict[str, tuple[Any, str]] = {
    **dict.fromkeys(
        (
            "num_frames",
            "keyframes",
            "limit",
            "prune_layer",
            "seed",
            "max_new_tokens",
            "workers",
            "prefetch",
            "subtitle_frames",
        ),
        _INTEGER,
    ),
    **dict.fromkeys(("skip_missing", "retry_errors", "overwrite", "subtitles", "time_bounds", "strict_video"), _FLAG),
    **dict.fromkeys(("benchmark", "model", "dtype", "attn_implementation", "prompt_variant", "split"), _TEXT),
    **dict.fromkeys(("data_root", "output", "annotations"), _PATH),
}
_VARIANT_KINDS: dict[str, tuple[Any, str]] = {
    "method": _TEXT,
    "keep_ratio": (_is_number, "a number"),
    "prune_layer": _INTEGER,
}
_VARIANT_KEYS = tuple(_VARIANT_KINDS)
_LIST_KINDS: dict[str, tuple[Any, str]] = {
    **dict.fromkeys(("keep_ratio", "keep_ratios"), (_is_number, "a number")),
    **dict.fromkeys(("method", "methods", "tasks"), _TEXT),
}


def _setting_problem(key: str, value: Any) -> Optional[str]:
    """Why ``value`` cannot be setting ``key`` (None when it can; None is always "unset")."""
    if value is None:
        return None
    if key in _SETTING_KINDS:
        test, expected = _SETTING_KINDS[key]
        return None if test(value) else f"setting {key!r} must be {expected}; got {value!r}"
    if key in _LIST_KINDS:
        test, expected = _LIST_KINDS[key]
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            return f"setting {key!r} must not be an empty list"
        return (
            None
            if all(test(item) for item in items)
            else f"setting {key!r} must be {expected} or a list of them; got {value!r}"
        )
    if key == "variants":
        return _variants_problem(value)
    return None


def _variants_problem(value: Any) -> Optional[str]:
    expected = "a non-empty list of {method, keep_ratio, prune_layer} mappings"
    if not isinstance(value, (list, tuple)) or not value:
        return f"setting 'variants' must be {expected}; got {value!r}"
    for number, item in enumerate(value, start=1):
        if not isinstance(item, Mapping):
            return f"setting 'variants' item {number} must be a mapping of {', '.join(_VARIANT_KEYS)}; got {item!r}"
        unknown = sorted(set(item) - set(_VARIANT_KEYS))
        if unknown:
            return f"setting 'variants' item {number}: unknown key(s) {unknown}; known: {', '.join(_VARIANT_KEYS)}"
        for key, (test, expected) in _VARIANT_KINDS.items():
            if item.get(key) is not None and not test(item[key]):
                return f"setting 'variants' item {number}: {key!r} must be {expected}; got {item[key]!r}"
    return None


def check_settings(settings: Mapping[str, Any], source: str = "") -> None:
    """Raise ValueError, naming the setting (and ``source``, e.g. the config file), for a value of the wrong type
    or an empty list."""
    for key, value in settings.items():
        problem = _setting_problem(key, value)
        if problem:
            raise ValueError(f"{source}: {problem}" if source else problem)


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping of a YAML run config; unknown keys and values of the wrong type raise ValueError naming the
    file and the setting."""
    from .._optional import require

    yaml = require("yaml", "eval", "pyyaml")
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot parse config file {path}: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    known = _FILE_KEYS | set(benchmark_settings())
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {unknown}; known: {', '.join(sorted(known))}")
    check_settings(data, str(path))
    return data


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_benchmark_settings(settings: Mapping[str, Any]) -> None:
    """A setting of one benchmark (its :attr:`~.base.Benchmark.settings`) given, with a value other than its default,
    for another is an error, not silently ignored."""
    defaults = BenchmarkOptions()
    for key, owner in benchmark_settings().items():
        value = settings.get(key)
        if value is not None and value != defaults.get(key) and settings["benchmark"] != owner:
            raise ValueError(f"setting {key!r} applies to {owner} only, not to {settings['benchmark']}")


def config_from_mapping(settings: Mapping[str, Any]) -> RunConfig:
    """A RunConfig from a flat mapping (a YAML file merged with command-line values).

    Variants come from ``variants`` (a list of {method, keep_ratio, prune_layer}), or from ``method(s)`` x
    ``keep_ratio(s)`` with one ``prune_layer``.
    """
    settings = dict(settings)
    check_settings(settings)
    missing = [key for key in ("benchmark", "data_root", "output") if not settings.get(key)]
    if missing:
        raise ValueError(f"missing setting(s): {', '.join(missing)}")
    _check_benchmark_settings(settings)
    variants_setting = settings.pop("variants", None)
    methods = _as_list(settings.pop("methods", None)) + _as_list(settings.pop("method", None))
    ratios = _as_list(settings.pop("keep_ratios", None)) + _as_list(settings.pop("keep_ratio", None))
    prune_layer = settings.pop("prune_layer", None)
    if variants_setting is not None:
        variants = tuple(Variant(**dict(item)) for item in variants_setting)
    else:
        variants = expand_variants(
            [str(m) for m in methods] or (["divprune"] if ratios else [NO_PRUNING]),
            [float(r) for r in ratios],
            prune_layer,
        )
    if settings.get("tasks") is not None and isinstance(settings["tasks"], str):
        settings["tasks"] = tuple(task for task in settings["tasks"].split(",") if task)
    settings.setdefault("model", DEFAULT_MODEL)
    if settings.get("prompt_variant") in (None, "auto"):
        settings.pop("prompt_variant", None)
        if settings["benchmark"] == "videomme":
            settings["prompt_variant"] = family_prompt_variant(str(settings["model"]))
    fields = {key: settings.pop(key) for key in list(settings) if key in _OPTION_KEYS}
    extra = {key: settings.pop(key) for key in list(settings) if key in benchmark_settings()}
    options = BenchmarkOptions(**fields, extra=extra)
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(RunConfig)})
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}")
    return RunConfig(variants=variants, options=options, **settings)


def family_prompt_variant(model: str) -> str:
    """Video-MME's prompt variant for ``model``: lmms-eval's entry for the wrapper the family's published scores come
    from (:attr:`~divprune_video.models.ModelFamily.lmms_eval_model`) when videomme.yaml has one, else "default"."""
    from .answerers import model_type_of
    from .videomme import PROMPT_VARIANTS

    model_type = model_type_of(model)
    if model_type is None:
        return "default"
    from ..models import model_family

    try:
        wrapper = model_family(model_type).lmms_eval_model
    except ValueError:
        return "default"
    return wrapper if wrapper in PROMPT_VARIANTS else "default"
