"""Modules built from their config blocks: a block's keys are the module's field names, so a new module
setting is one field here and one key in the config."""

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

import jax.numpy as jnp
from flax import linen as nn

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Fields every linen module has that no config sets.
_LINEN_FIELDS = ("parent", "name")

M = TypeVar("M", bound=nn.Module)


def from_block(cls: type[M], block: Mapping[str, Any], **shared: Any) -> M:
    """`cls` with every field that `block` (a config block) or `shared` names; fields neither names keep
    cls's defaults, and block keys that name no field (a block's training knobs) are not the module's.

    Sequences become tuples (linen fields are hashed) and a "dtype" name ("float32", "bfloat16") its
    jnp dtype. `shared` holds the settings a block takes from its parent (tower_dim, the model's dtype);
    a key the block also has is the block's own.
    """
    fields = {f.name for f in dataclasses.fields(cls)} - set(_LINEN_FIELDS)
    values = {**shared, **{key: block[key] for key in fields if key in block}}
    return cls(**{key: _field_value(key, value) for key, value in values.items()})


def _field_value(key: str, value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(value)
    if key == "dtype" and isinstance(value, str):
        return DTYPES[value]
    return value
