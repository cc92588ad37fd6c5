"""Multi-stage jobs built from the training runtime and the evaluation suite (the demo)."""
