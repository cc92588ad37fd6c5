"""The bundled tri-modal world: procedural images, sounds and captions of shared concepts."""
