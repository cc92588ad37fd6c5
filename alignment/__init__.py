"""The model library: towers, shared head, losses, sharded steps and evaluation maths. No I/O."""
