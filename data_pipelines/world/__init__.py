"""The bundled tri-modal world: procedural images, sounds and captions of shared concepts."""

from data_pipelines.world.generator import SPLITS, World, WorldConfig

__all__ = ["SPLITS", "World", "WorldConfig"]
