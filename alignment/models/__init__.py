"""Flax modules: the vision, sound and text towers, the shared head, the tri-modal network, the teacher."""
