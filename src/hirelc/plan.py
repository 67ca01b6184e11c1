"""Compression plans: layer name -> `LayerConfig`.

A plan is the single object every search method produces and every consumer (apply,
export, cost models, evaluator cache) reads. ReLeQ plans vary only `bits`; HiReLC plans
vary all four fields (seed 001: bit-width, keep-ratio, quantization type, granularity).

>>> plan = Plan({"conv1": LayerConfig(bits=4), "fc1": LayerConfig(bits=2, keep_ratio=0.5)})
>>> Plan.from_json(plan.to_json()) == plan
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hirelc.inventory.spec import LayerSpec

NUMBER_FORMATS = ("int_sym", "int_asym", "pow2", "float")
GRANULARITIES = ("per_tensor", "per_channel", "per_group")
DEFAULT_GROUP_SIZE = 32
MIN_BITS, MAX_BITS = 1, 8
FLOAT_MIN_BITS = 4  # a minifloat needs a sign, >= 2 exponent bits and >= 1 mantissa bit


@dataclass(frozen=True)
class LayerConfig:
    """How one kernel is compressed.

    bits: weight bitwidth, 1..8 (1 bit = sign x scale).
    keep_ratio: fraction of output channels / neurons / heads kept, in (0, 1].
    number_format: "int_sym", "int_asym", "pow2" (power-of-two levels) or "float" (minifloat).
    granularity: one scale per tensor, per output channel, or per group of `group_size`
        consecutive weights of an output row (default group size 32).
    """

    bits: int
    keep_ratio: float = 1.0
    number_format: str = "int_sym"
    granularity: str = "per_channel"
    group_size: int | None = None

    def __post_init__(self) -> None:
        self.validate()
        if self.granularity == "per_group" and self.group_size is None:
            object.__setattr__(self, "group_size", DEFAULT_GROUP_SIZE)
        if self.granularity != "per_group" and self.group_size is not None:
            object.__setattr__(self, "group_size", None)
        object.__setattr__(self, "keep_ratio", float(self.keep_ratio))

    def validate(self, layer: str = "") -> None:
        where = f"layer {layer!r}: " if layer else ""
        if isinstance(self.bits, bool) or not isinstance(self.bits, int):
            raise ValueError(f"{where}bits must be an integer, got {self.bits!r}")
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise ValueError(f"{where}bits must be in {MIN_BITS}..{MAX_BITS}, got {self.bits}")
        if not isinstance(self.keep_ratio, (int, float)) or not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"{where}keep_ratio must be in (0, 1], got {self.keep_ratio!r}")
        if self.number_format not in NUMBER_FORMATS:
            raise ValueError(
                f"{where}unknown number_format {self.number_format!r}; expected one of {NUMBER_FORMATS}"
            )
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"{where}unknown granularity {self.granularity!r}; expected one of {GRANULARITIES}"
            )
        if self.number_format == "float" and self.bits < FLOAT_MIN_BITS:
            raise ValueError(
                f"{where}number_format 'float' needs {FLOAT_MIN_BITS}..8 bits, got {self.bits}"
            )
        if self.group_size is not None and (
            isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 1
        ):
            raise ValueError(f"{where}group_size must be a positive integer, got {self.group_size!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], layer: str = "") -> "LayerConfig":
        known = {"bits", "keep_ratio", "number_format", "granularity", "group_size"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"layer {layer!r}: unknown LayerConfig fields {sorted(unknown)}")
        if "bits" not in d:
            raise ValueError(f"layer {layer!r}: LayerConfig needs 'bits'")
        try:
            return cls(**dict(d))
        except ValueError as e:
            raise ValueError(f"layer {layer!r}: {e}") from None


@dataclass
class Plan(Mapping[str, LayerConfig]):
    """Layer name -> LayerConfig. Layers not in the plan stay uncompressed (fp32)."""

    layers: dict[str, LayerConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = dict(self.layers)
        for name, cfg in self.layers.items():
            if not isinstance(cfg, LayerConfig):
                raise ValueError(f"layer {name!r}: expected a LayerConfig, got {type(cfg).__name__}")

    # Mapping protocol
    def __getitem__(self, name: str) -> LayerConfig:
        return self.layers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self.layers == other.layers

    def __hash__(self) -> int:  # a Plan is used as a cache key via `content_hash`
        return hash(self.content_hash())

    @classmethod
    def uniform(
        cls,
        specs: Iterable["LayerSpec"],
        bits: int,
        keep_ratio: float = 1.0,
        number_format: str = "int_sym",
        granularity: str = "per_channel",
        group_size: int | None = None,
    ) -> "Plan":
        """The same config on every kernel; `keep_ratio` only on kernels that can be pruned."""
        layers = {}
        for s in specs:
            kr = keep_ratio if s.prunable else 1.0
            layers[s.name] = LayerConfig(bits, kr, number_format, granularity, group_size)
        return cls(layers)

    @classmethod
    def from_bits(cls, names: Iterable[str], bits: Iterable[int]) -> "Plan":
        """A ReLeQ plan: one bitwidth per layer, everything else at defaults."""
        names, bits = list(names), list(bits)
        if len(names) != len(bits):
            raise ValueError(f"{len(names)} layer names but {len(bits)} bitwidths")
        return cls({n: LayerConfig(int(b)) for n, b in zip(names, bits)})

    def bits(self) -> list[int]:
        return [c.bits for c in self.layers.values()]

    def replace(self, name: str, **changes: Any) -> "Plan":
        """A new plan with one layer's config changed."""
        cfg = asdict(self.layers[name]) | changes
        return Plan(self.layers | {name: LayerConfig(**cfg)})

    def validate_against(self, layer_names: Iterable[str], prunable: Iterable[str] = ()) -> None:
        """Raise ValueError for a layer the model does not have, or pruning of a kernel that
        cannot be pruned."""
        known = set(layer_names)
        can_prune = set(prunable)
        for name, cfg in self.layers.items():
            if name not in known:
                hint = ", ".join(sorted(known)[:8])
                raise ValueError(
                    f"plan names layer {name!r}, which the model does not have "
                    f"(compressible layers: {hint}{', ...' if len(known) > 8 else ''})"
                )
            if cfg.keep_ratio < 1.0 and name not in can_prune:
                raise ValueError(
                    f"layer {name!r}: keep_ratio {cfg.keep_ratio} asks for pruning, but this "
                    "layer's outputs cannot be removed structurally (see LayerSpec.prune_reason); "
                    "use keep_ratio=1.0"
                )

    # Serialisation
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: cfg.to_dict() for name, cfg in self.layers.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Plan":
        if not isinstance(d, Mapping):
            raise ValueError(f"a plan must be a JSON object of layer -> config, got {type(d).__name__}")
        layers = {}
        for name, cfg in d.items():
            if isinstance(cfg, int) and not isinstance(cfg, bool):
                cfg = {"bits": cfg}  # shorthand: {"conv1": 4}
            if not isinstance(cfg, Mapping):
                raise ValueError(f"layer {name!r}: config must be an object or a bitwidth, got {cfg!r}")
            layers[name] = LayerConfig.from_dict(cfg, layer=name)
        return cls(layers)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"plan is not valid JSON: {e}") from None
        if isinstance(data, Mapping) and "plan" in data and isinstance(data["plan"], Mapping):
            data = data["plan"]  # accept a result.json too
        return cls.from_dict(data)

    def content_hash(self) -> str:
        """Stable across processes and key order: sha256 of canonical JSON, 16 hex chars."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
