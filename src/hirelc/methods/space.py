"""The joint search space: per kernel, which `LayerConfig`s a search may choose.

HiReLC (seeds 001/002) searches, per kernel, over bit-width x pruning keep-ratio x
quantization type x granularity; ReLeQ (seed 000) over bit-width only. Both are one
`SearchSpace`: ReLeQ's is `SpaceConfig.bits_only(bits)`.

Which combinations are valid, and why (the rest of a kernel's grid is masked out):

- `float` (minifloat) needs >= 4 bits: a sign, >= 2 exponent bits and >= 1 mantissa bit.
- At 1 bit every format is sign x scale (hirelc.compress.quantize), so only one format is
  offered (`int_sym` when allowed, else the first one listed).
- `pow2` at 2 bits has the levels {0, +-1} x scale, exactly `int_sym` at 2 bits, so it is
  dropped when `int_sym` is offered.
- keep-ratios below 1 only on kernels whose outputs can be removed (`LayerSpec.prunable`).
- `per_group(g)` only on kernels with more than g weights per row (otherwise it is
  `per_channel` under another name).

>>> from hirelc.inventory.spec import LayerSpec
>>> layers = [LayerSpec("conv", "conv2d", (16, 8, 3, 3), 1000, prunable=True),
...           LayerSpec("fc", "linear", (10, 16), 160)]
>>> space = SearchSpace(layers, SpaceConfig())
>>> len(space.kernel_configs("conv")), len(space.kernel_configs("fc"))  # 21 (bits, format) pairs
(441, 42)
>>> space.size()
18522
>>> SearchSpace.from_dict(space.to_dict(), layers) == space
True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from hirelc.inventory.spec import LayerSpec
from hirelc.plan import DEFAULT_GROUP_SIZE, FLOAT_MIN_BITS, GRANULARITIES, MAX_BITS, MIN_BITS, NUMBER_FORMATS
from hirelc.plan import LayerConfig, Plan

DEFAULT_JOINT_BITS = (2, 3, 4, 5, 6, 8)
DEFAULT_KEEP_RATIOS = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25)
DEFAULT_GRANULARITIES = ("per_tensor", "per_channel", f"per_group:{DEFAULT_GROUP_SIZE}")


def parse_granularity(text: str) -> tuple[str, int | None]:
    """'per_tensor' | 'per_channel' | 'per_group:G' (also 'per_group(G)', 'per_group') ->
    (granularity, group size or None).

    >>> parse_granularity("per_group(64)"), parse_granularity("per_channel")
    (('per_group', 64), ('per_channel', None))
    """
    name, _, rest = str(text).replace("(", ":").rstrip(")").partition(":")
    if name not in GRANULARITIES:
        raise ValueError(f"unknown granularity {text!r}; expected per_tensor, per_channel or per_group:G")
    if name != "per_group":
        if rest:
            raise ValueError(f"granularity {text!r}: only per_group takes a group size")
        return name, None
    try:
        size = int(rest) if rest else DEFAULT_GROUP_SIZE
    except ValueError:
        raise ValueError(f"granularity {text!r}: the group size must be an integer, e.g. per_group:32") from None
    if size < 1:
        raise ValueError(f"granularity {text!r}: the group size must be positive")
    return name, size


def granularity_label(granularity: str, group_size: int | None) -> str:
    """Inverse of `parse_granularity`.

    >>> granularity_label("per_group", 32)
    'per_group:32'
    """
    return f"per_group:{group_size}" if granularity == "per_group" else granularity


@dataclass(frozen=True)
class SpaceConfig:
    """The choice sets of a search (the same for every kernel, before masking).

    bits: bit-widths; keep_ratios: fractions of output channels/heads kept (1.0 = no
    pruning); formats: number formats; granularities: 'per_tensor', 'per_channel',
    'per_group:G'. Validated in `__post_init__`; `to_dict` / `from_dict` round-trip.

    >>> SpaceConfig.parse(bits="2,4,8", keep="1,0.5", formats="int_sym", granularity="per_channel").keep_ratios
    (1.0, 0.5)
    """

    bits: tuple[int, ...] = DEFAULT_JOINT_BITS
    keep_ratios: tuple[float, ...] = DEFAULT_KEEP_RATIOS
    formats: tuple[str, ...] = NUMBER_FORMATS
    granularities: tuple[str, ...] = DEFAULT_GRANULARITIES

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _sorted_unique("bits", self.bits, int, MIN_BITS, MAX_BITS))
        keeps = _sorted_unique("keep_ratios", self.keep_ratios, float, 0.0, 1.0)
        if keeps[0] <= 0.0:
            raise ValueError(f"keep_ratios must be in (0, 1], got {self.keep_ratios!r}")
        object.__setattr__(self, "keep_ratios", tuple(reversed(keeps)))  # 1.0 first
        formats = tuple(dict.fromkeys(self.formats))
        unknown = [f for f in formats if f not in NUMBER_FORMATS]
        if unknown or not formats:
            raise ValueError(f"formats must be a non-empty subset of {NUMBER_FORMATS}, got {self.formats!r}")
        object.__setattr__(self, "formats", formats)
        grans = tuple(dict.fromkeys(granularity_label(*parse_granularity(g)) for g in self.granularities))
        if not grans:
            raise ValueError("granularities must not be empty")
        object.__setattr__(self, "granularities", grans)
        if not any(valid_format(b, f, formats) for b in self.bits for f in formats):
            raise ValueError(f"no valid (bits, format) pair in bits {self.bits} x formats {formats}")

    @classmethod
    def bits_only(cls, bits: Sequence[int]) -> "SpaceConfig":
        """ReLeQ's space (seed 000): bit-widths only, int_sym per channel, no pruning.

        >>> SpaceConfig.bits_only([8, 2, 4]).bits
        (2, 4, 8)
        """
        return cls(bits=tuple(bits), keep_ratios=(1.0,), formats=("int_sym",), granularities=("per_channel",))

    @classmethod
    def parse(cls, *, bits: str | None = None, keep: str | None = None, formats: str | None = None,
              granularity: str | None = None) -> "SpaceConfig":
        """From comma-separated CLI strings; a missing one keeps the default."""
        d: dict[str, Any] = {}
        if bits is not None:
            d["bits"] = tuple(_ints("bits", bits))
        if keep is not None:
            d["keep_ratios"] = tuple(_floats("keep", keep))
        if formats is not None:
            d["formats"] = tuple(_items(formats))
        if granularity is not None:
            d["granularities"] = tuple(_items(granularity))
        return cls(**d)

    @property
    def is_bits_only(self) -> bool:
        return self.keep_ratios == (1.0,) and len(self.formats) == 1 and len(self.granularities) == 1

    def to_dict(self) -> dict[str, list]:
        return {"bits": list(self.bits), "keep_ratios": list(self.keep_ratios), "formats": list(self.formats),
                "granularities": list(self.granularities)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SpaceConfig":
        unknown = set(d) - {"bits", "keep_ratios", "formats", "granularities"}
        if unknown:
            raise ValueError(f"unknown search-space fields {sorted(unknown)}")
        return cls(**{k: tuple(v) for k, v in d.items()})


def valid_format(bits: int, number_format: str, formats: Sequence[str]) -> bool:
    """Whether (bits, number_format) is offered when `formats` are; see the module docstring.

    >>> [f for f in NUMBER_FORMATS if valid_format(2, f, NUMBER_FORMATS)]
    ['int_sym', 'int_asym']
    """
    if number_format == "float" and bits < FLOAT_MIN_BITS:
        return False
    if bits == 1:
        return number_format == ("int_sym" if "int_sym" in formats else formats[0])
    if number_format == "pow2" and bits == 2 and "int_sym" in formats:
        return False
    return True


@dataclass(frozen=True)
class SearchSpace:
    """Per-kernel valid `LayerConfig`s over `layers`, from one `SpaceConfig`.

    The multi-discrete view (for agents) is per kernel (bits, keep, format, granularity)
    indices into the config's tuples; `kernel_configs` is the flat list of valid configs.
    """

    layers: tuple[LayerSpec, ...]
    config: SpaceConfig = field(default_factory=SpaceConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError("a search space needs at least one kernel")
        names = [s.name for s in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"kernel names must be unique, got {names}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.config == other.config and self.names == other.names

    def __hash__(self) -> int:
        return hash((self.config, tuple(self.names)))

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.layers]

    # --- per-kernel choices -------------------------------------------------------------
    def keep_choices(self, name: str) -> tuple[float, ...]:
        return self.config.keep_ratios if self._spec[name].prunable else (1.0,)

    def granularity_choices(self, name: str) -> tuple[str, ...]:
        cols = math.prod(self._spec[name].weight_shape[1:])
        kept = tuple(g for g in self.config.granularities
                     if not (g.startswith("per_group") and parse_granularity(g)[1] >= cols))
        return kept or ("per_channel",)

    def format_choices(self, bits: int) -> tuple[str, ...]:
        return tuple(f for f in self.config.formats if valid_format(bits, f, self.config.formats))

    def kernel_configs(self, name: str) -> tuple[LayerConfig, ...]:
        """Every valid config of kernel `name`, in (bits, keep, format, granularity) order."""
        return self._configs[name]

    def allows(self, name: str, cfg: LayerConfig) -> bool:
        """True when `cfg` is one of kernel `name`'s valid configs."""
        return cfg in self._config_sets[name]

    def contains(self, plan: Mapping[str, LayerConfig]) -> bool:
        """True when `plan` sets every kernel, and only those, to one of its valid configs."""
        return set(plan) == set(self.names) and all(plan[n] in self._config_sets[n] for n in self.names)

    def check(self, plan: Mapping[str, LayerConfig]) -> None:
        """Raise ValueError naming the first kernel whose config is outside the space."""
        missing = [n for n in self.names if n not in plan]
        extra = [n for n in plan if n not in self._spec]
        if missing or extra:
            raise ValueError(f"plan does not match the search space: missing {missing[:5]}, unknown {extra[:5]}")
        for n in self.names:
            if plan[n] not in self._config_sets[n]:
                raise ValueError(f"kernel {n!r}: {plan[n]} is not in the search space {self.config.to_dict()}")

    # --- whole-space operations ----------------------------------------------------------
    def size(self) -> int:
        """Number of distinct plans (exact; can be astronomically large)."""
        return math.prod(len(self._configs[n]) for n in self.names)

    def log10_size(self) -> float:
        return sum(math.log10(len(self._configs[n])) for n in self.names)

    def sample(self, rng: np.random.Generator) -> Plan:
        """A plan drawn uniformly: each kernel independently uniform over its valid configs."""
        # one vectorised draw: for a bits-only space the same stream as rng.choice(bits, size=L)
        picks = rng.integers(0, np.array([len(self._configs[n]) for n in self.names]))
        return Plan({n: self._configs[n][int(i)] for n, i in zip(self.names, picks)})

    def enumerate(self, limit: int = 100_000) -> Iterator[Plan]:
        """Every plan of the space (kernel order, last kernel fastest); refuses more than `limit`."""
        if self.size() > limit:
            raise ValueError(f"the space holds {self.size():,} plans, more than the limit {limit:,}")
        for combo in itertools.product(*(self._configs[n] for n in self.names)):
            yield Plan(dict(zip(self.names, combo)))

    def uniform_plan(self, bits: int, keep: float, number_format: str, granularity: str) -> Plan | None:
        """The same config on every kernel (keep only where prunable), or None if it is
        invalid for some kernel (e.g. a minifloat below 4 bits)."""
        if number_format not in self.format_choices(bits):
            return None
        layers = {}
        for n in self.names:
            kr = keep if self._spec[n].prunable else 1.0
            gran, gs = parse_granularity(granularity)
            if granularity not in self.granularity_choices(n):
                gran, gs = "per_channel", None  # short rows: per_group(G >= cols) is per_channel
            cfg = LayerConfig(bits, kr, number_format, gran, gs)
            if cfg not in self._config_sets[n]:
                return None
            layers[n] = cfg
        return Plan(layers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the config, the kernels, and the size of the space."""
        return {"config": self.config.to_dict(), "kernels": self.names,
                "log10_size": round(self.log10_size(), 3),
                "choices_per_kernel": {n: len(self._configs[n]) for n in self.names}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], layers: Sequence[LayerSpec]) -> "SearchSpace":
        space = cls(tuple(layers), SpaceConfig.from_dict(d["config"]))
        if "kernels" in d and list(d["kernels"]) != space.names:
            raise ValueError("the saved search space names other kernels than this model has")
        return space

    # --- internals --------------------------------------------------------------------
    @cached_property
    def _spec(self) -> dict[str, LayerSpec]:
        return {s.name: s for s in self.layers}

    @cached_property
    def _configs(self) -> dict[str, tuple[LayerConfig, ...]]:
        return {n: self._build_configs(n) for n in self.names}

    @cached_property
    def _config_sets(self) -> dict[str, frozenset[LayerConfig]]:
        return {n: frozenset(c) for n, c in self._configs.items()}

    def _build_configs(self, name: str) -> tuple[LayerConfig, ...]:
        out = []
        for bits in self.config.bits:
            for keep in self.keep_choices(name):
                for fmt in self.format_choices(bits):
                    for gran in self.granularity_choices(name):
                        out.append(LayerConfig(bits, keep, fmt, *parse_granularity(gran)))
        return tuple(out)


def _sorted_unique(what: str, values: Sequence[Any], kind: type, lo: float, hi: float) -> tuple:
    try:
        items = [kind(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a sequence of numbers, got {values!r}") from None
    if kind is int and any(isinstance(v, bool) or int(v) != v for v in values):
        raise ValueError(f"{what} must be integers, got {values!r}")
    if not items:
        raise ValueError(f"{what} must not be empty")
    if not all(lo <= v <= hi for v in items):
        raise ValueError(f"{what} must be in [{lo}, {hi}], got {values!r}")
    return tuple(sorted(set(items)))


def _items(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def _ints(what: str, text: str) -> list[int]:
    try:
        return [int(t) for t in _items(text)]
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated integers, e.g. 2,3,4,8; got {text!r}") from None


def _floats(what: str, text: str) -> list[float]:
    try:
        return [float(t) for t in _items(text)]
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated numbers, e.g. 1,0.75,0.5; got {text!r}") from None
