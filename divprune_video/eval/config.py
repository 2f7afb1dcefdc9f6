"""Run configuration: what to evaluate (benchmark, data, model, frames) and the pruning variants one run shares its
decoded frames across; built from arguments or from a YAML file in ``pipelines/``."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .base import BenchmarkOptions

UNPRUNED = "none"
DEFAULT_MODEL = "llava-hf/LLaVA-NeXT-Video-7B-hf"
DTYPES = (None, "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class Variant:
    """One pruning setting. ``method`` "none" (or ``keep_ratio`` 1) is the unpruned model; ``prune_layer`` None
    prunes before the LLM, K after LLM layer K."""

    method: str = UNPRUNED
    keep_ratio: float = 1.0
    prune_layer: Optional[int] = None

    def __post_init__(self) -> None:
        if not 0.0 < float(self.keep_ratio) <= 1.0:
            raise ValueError(f"keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if self.prune_layer is not None and int(self.prune_layer) < 0:
            raise ValueError(f"prune_layer must be >= 0 or None, got {self.prune_layer}")
        object.__setattr__(self, "keep_ratio", float(self.keep_ratio))
        if self.method == UNPRUNED or self.keep_ratio == 1.0:
            object.__setattr__(self, "method", UNPRUNED)
            object.__setattr__(self, "keep_ratio", 1.0)
            object.__setattr__(self, "prune_layer", None)
        else:
            from ..selection import available_methods

            if self.method not in available_methods():
                raise ValueError(f"unknown method {self.method!r}; expected {UNPRUNED!r} or one of "
                                 f"{', '.join(available_methods())}")

    @property
    def pruned(self) -> bool:
        return self.method != UNPRUNED

    @property
    def name(self) -> str:
        """A folder-safe name: ``unpruned``, ``divprune-keep0.15``, ``divprune-keep0.15-layer2``."""
        if not self.pruned:
            return "unpruned"
        layer = "" if self.prune_layer is None else f"-layer{self.prune_layer}"
        return f"{self.method}-keep{self.keep_ratio:g}{layer}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self)}


def expand_variants(
    methods: Sequence[str], keep_ratios: Sequence[float], prune_layer: Optional[int] = None
) -> tuple[Variant, ...]:
    """Every method x keep ratio, unpruned settings folded into one, in the given order."""
    variants: list[Variant] = []
    for method, ratio in itertools.product(methods or [UNPRUNED], keep_ratios or [1.0]):
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

    def variant_dir(self, variant: Variant) -> Path:
        """Where a variant's results go: the output folder itself for a single variant, else a sub-folder."""
        return self.output if len(self.variants) == 1 else self.output / variant.name

    def fingerprint(self, variant: Variant) -> dict[str, Any]:
        """Settings that change answers or scores: a resumed run must match them (data paths, limits, workers
        and the like may change between runs)."""
        keys = ("benchmark", "model", "num_frames", "keyframes", "seed", "max_new_tokens", "dtype",
                "attn_implementation")
        options = {key: value for key, value in dataclasses.asdict(self.options).items() if key != "annotations"}
        return {**{key: getattr(self, key) for key in keys}, **options, "variant": variant.to_dict()}

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("variants", "options")}
        data.update(dataclasses.asdict(self.options))
        data["variants"] = [variant.to_dict() for variant in self.variants]
        return {key: str(value) if isinstance(value, Path) else value for key, value in data.items()}


_OPTION_KEYS = {f.name for f in dataclasses.fields(BenchmarkOptions)}
_FILE_KEYS = ({f.name for f in dataclasses.fields(RunConfig)} - {"options"}) | _OPTION_KEYS | {
    "methods", "keep_ratios", "prune_layer", "method", "keep_ratio"}


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping of a YAML run config; unknown keys raise ValueError naming the file."""
    from .._optional import require

    yaml = require("yaml", "eval", "pyyaml")
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"cannot parse config file {path}: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {unknown}; known: {', '.join(sorted(_FILE_KEYS))}")
    return data


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def config_from_mapping(settings: Mapping[str, Any]) -> RunConfig:
    """A RunConfig from a flat mapping (a YAML file merged with command-line values).

    Variants come from ``variants`` (a list of {method, keep_ratio, prune_layer}), or from ``method(s)`` x
    ``keep_ratio(s)`` with one ``prune_layer``.
    """
    settings = dict(settings)
    missing = [key for key in ("benchmark", "data_root", "output") if not settings.get(key)]
    if missing:
        raise ValueError(f"missing setting(s): {', '.join(missing)}")
    variants_setting = settings.pop("variants", None)
    methods = _as_list(settings.pop("methods", None)) + _as_list(settings.pop("method", None))
    ratios = _as_list(settings.pop("keep_ratios", None)) + _as_list(settings.pop("keep_ratio", None))
    prune_layer = settings.pop("prune_layer", None)
    if variants_setting:
        variants = tuple(Variant(**dict(item)) for item in variants_setting)
    else:
        variants = expand_variants([str(m) for m in methods] or (["divprune"] if ratios else [UNPRUNED]),
                                   [float(r) for r in ratios], prune_layer)
    if settings.get("tasks") is not None and isinstance(settings["tasks"], str):
        settings["tasks"] = tuple(task for task in settings["tasks"].split(",") if task)
    settings.setdefault("model", DEFAULT_MODEL)
    options = BenchmarkOptions(**{key: settings.pop(key) for key in list(settings) if key in _OPTION_KEYS})
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(RunConfig)})
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}")
    return RunConfig(variants=variants, options=options, **settings)
