"""Saving a trained model with the metadata that rebuilds it, and rebuilding it."""

from __future__ import annotations

from pathlib import Path

from snnkd import io, validate
from snnkd.data import dataset_info
from snnkd.encoding import make_encoder
from snnkd.errors import SnnkdError
from snnkd.models import StagedNet, create_model
from snnkd.neurons import NeuronConfig

META_KEYS = ("arch", "kind", "num_classes", "in_chans", "img_size", "dataset", "neuron", "T", "encoding")


def model_meta(model: StagedNet, dataset: str, neuron: NeuronConfig | None, encoding: str = "direct") -> dict:
    info = {"arch": model.arch, "kind": "snn" if neuron is not None else "ann",
            "num_classes": model.head.fc.out_features, "in_chans": model.in_chans, "img_size": model.img_size,
            "dataset": dataset, "neuron": neuron.to_dict() if neuron is not None else None,
            "T": model.T, "encoding": encoding}
    return info


def build(arch: str, neuron: NeuronConfig | None, num_classes: int, in_chans: int, img_size: int,
          T: int = 1, encoding: str = "direct", dataset: str | None = None) -> StagedNet:
    """Build a model; a Poisson encoder undoes ``dataset``'s input normalisation."""
    m = create_model(arch, neuron, num_classes, in_chans, img_size, T)
    info = dataset_info(dataset) if dataset else None
    m.set_encoder(make_encoder(encoding, info.mean if info else None, info.std if info else None))
    return m


def save_model(path: str | Path, model: StagedNet, meta: dict, extra: dict | None = None) -> None:
    io.save_checkpoint(path, model.state_dict(), {**meta, **(extra or {})})


def load_model(path: str | Path) -> tuple[StagedNet, dict]:
    """Rebuild a model from its file; one clear error for foreign or mismatched files."""
    state, meta = io.load_checkpoint(path)
    validate.check_meta(meta, str(path))  # before the model is built: no 2**34-class layer
    try:
        neuron = NeuronConfig(**meta["neuron"]) if meta["neuron"] else None
        if meta.get("conversion") is not None:  # an ANN-to-SNN conversion: scaled IF neurons
            from snnkd.convert import build_converted
            model = build_converted(meta)
        else:
            model = build(meta["arch"], neuron, meta["num_classes"], meta["in_chans"],
                          meta["img_size"], meta["T"], meta["encoding"], meta["dataset"])
    except (TypeError, ValueError) as e:
        raise SnnkdError(f"{path}: invalid checkpoint metadata: {e}") from None
    expected = model.state_dict()
    wrong = next((k for k, v in state.items() if k in expected and expected[k].is_floating_point()
                  and not v.is_floating_point()), None)
    if wrong is not None:
        raise SnnkdError(f"{path}: weight {wrong!r} is {state[wrong].dtype}; the model keeps it as floating point")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = [ln.strip() for ln in str(e).splitlines() if ln.strip()][:2]
        raise SnnkdError(f"{path}: weights do not fit architecture {meta['arch']!r}: {' '.join(first)}") from None
    bad = validate.nonfinite_count(state)
    if bad:
        raise SnnkdError(f"{path} has {bad} non-finite weights (NaN or infinite: training diverged); refusing it")
    if meta.get("conversion") is not None:
        from snnkd.convert import check_scales
        check_scales(model, str(path))
    model.eval()
    return model, meta
