"""Converts torchvision's AlexNet state_dict into the Teacher's parameters (torch is needed only here).

The file is read with `torch.load(weights_only=True)`, torch's restricted loader that accepts tensors and
plain containers only and refuses arbitrary objects, so no code from the file runs.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from data_pipelines import paths

# torchvision alexnet().features indices of conv1..conv5, classifier indices of fc6..fc8.
CONV_INDICES = (0, 3, 6, 8, 10)
FC_INDICES = (1, 4, 6)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """A torchvision .pth state_dict (a local file or a URI such as gs://...) as numpy arrays."""
    try:
        import torch
    except ImportError as err:
        raise ImportError(
            "importing a torchvision teacher needs torch: pip install -r requirements-torch.txt"
        ) from err
    try:
        with paths.as_path(path).open("rb") as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: (GLOBAL \S+)", str(err))
        detail = f" ({found.group(1)})" if found else ""
        raise ValueError(
            f"{path} is not a plain state_dict of tensors: torch's restricted loader (weights_only) "
            f"refused an object in it{detail}, so nothing in the file ran"
        ) from None
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict of tensors")
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(
                f"{path} is not a state_dict of tensors: {name} is of type {type(tensor).__name__}"
            )
    return {name: tensor.detach().cpu().numpy() for name, tensor in state.items()}


def convert_alexnet(state: Mapping[str, np.ndarray], pooled_side: int = 6) -> dict[str, Any]:
    """torchvision AlexNet weights -> Teacher params (NHWC, HWIO kernels, [in, out] Dense kernels).

    fc6's input rows are reordered from torch's C-H-W flattening to our H-W-C flattening.
    """
    missing = [
        f"features.{i}.weight" for i in CONV_INDICES if f"features.{i}.weight" not in state
    ] + [f"classifier.{i}.weight" for i in FC_INDICES if f"classifier.{i}.weight" not in state]
    if missing:
        raise ValueError(f"not a torchvision AlexNet state_dict: missing {missing}")
    features = {
        f"conv{n + 1}": {
            "kernel": np.transpose(state[f"features.{i}.weight"], (2, 3, 1, 0)),
            "bias": state[f"features.{i}.bias"],
        }
        for n, i in enumerate(CONV_INDICES)
    }
    params: dict[str, Any] = {"features": features}
    for n, i in enumerate(FC_INDICES):
        weight = state[f"classifier.{i}.weight"]
        if n == 0:
            channels = weight.shape[1] // (pooled_side * pooled_side)
            weight = (
                weight.reshape(weight.shape[0], channels, pooled_side, pooled_side)
                .transpose(0, 2, 3, 1)
                .reshape(weight.shape[0], -1)
            )
        params[f"fc{n + 6}"] = {"kernel": weight.T.copy(), "bias": state[f"classifier.{i}.bias"]}
    return params
