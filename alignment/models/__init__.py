"""Flax modules: the vision, sound and text towers, the shared head, the tri-modal network, the teacher."""

from alignment.models.network import MODALITIES, TriModalNet, create_model, init_params
from alignment.models.teacher import Teacher, create_teacher

__all__ = ["MODALITIES", "Teacher", "TriModalNet", "create_model", "create_teacher", "init_params"]
