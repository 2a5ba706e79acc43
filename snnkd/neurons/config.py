"""The parameters of an IF or LIF neuron (:class:`NeuronConfig`), checked on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

SurrogateKind = Literal["atan", "sigmoid", "triangle"]
SURROGATES: tuple[str, ...] = ("atan", "sigmoid", "triangle")


@dataclass(frozen=True)
class NeuronConfig:
    """Parameters of an IF or LIF neuron.  ``decay`` and ``tau`` are two spellings of the
    LIF leak (``beta = decay = 1 - 1/tau``); give at most one."""

    kind: Literal["if", "lif"] = "if"
    threshold: float = 1.0
    decay: float | None = None
    tau: float | None = None
    reset: Literal["hard", "soft"] = "hard"
    detach_reset: bool = True
    surrogate: SurrogateKind = "atan"
    width: float = 0.5
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("if", "lif"):
            raise ValueError(f"neuron kind must be 'if' or 'lif', got {self.kind!r}")
        if self.reset not in ("hard", "soft"):
            raise ValueError(f"reset must be 'hard' or 'soft', got {self.reset!r}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {self.surrogate!r}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if not self.width > 0:
            raise ValueError(f"surrogate width must be > 0, got {self.width}")
        if self.kind == "lif":
            if self.decay is not None and self.tau is not None:
                raise ValueError("give the LIF leak as decay or tau, not both")
            if self.decay is None and self.tau is None:
                raise ValueError("a LIF neuron needs decay or tau")
            if self.decay is not None and not 0.0 <= self.decay <= 1.0:
                raise ValueError(f"decay must lie in [0, 1], got {self.decay}")
            if self.tau is not None and not self.tau >= 1.0:
                raise ValueError(f"tau must be >= 1 (time steps), got {self.tau}")

    @property
    def beta(self) -> float:
        """Membrane retention per step: 1 for IF, ``decay`` or ``1 - 1/tau`` for LIF."""
        if self.kind == "if":
            return 1.0
        if self.decay is not None:
            return float(self.decay)
        return 1.0 - 1.0 / float(self.tau)  # type: ignore[arg-type]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        return d
