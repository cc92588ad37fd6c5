"""Retrieval of a trained run (Tables 1 and 2): median rank and recall@k of the true match in every
direction, at each layer of config.eval_layers, and the fraction of never-active units.

Retrieval uses the test rows holding all three modalities, in chunks of config.eval_chunk items (the
paper: 5 x 1000 of 5000); the rank of the true match among tied similarities is the mean position of the
tied block (alignment.retrieval.ranks).
"""

from __future__ import annotations

import time

from alignment import retrieval, units
from alignment.streams import MODALITIES
from experiments.evaluation.context import EvalContext, triplet_rows
from experiments.evaluation.rows import RANKS, RESULTS, Row

# Table 1 (pairs seen in training) then Table 2 (sound and text, never paired).
PAIRED_DIRECTIONS = (("image", "sound"), ("sound", "image"), ("image", "text"), ("text", "image"))
UNPAIRED_DIRECTIONS = (("text", "sound"), ("sound", "text"))
DIRECTIONS = PAIRED_DIRECTIONS + UNPAIRED_DIRECTIONS
OBJECTIVE_ROWS = {"transfer": "Model Transfer", "ranking": "Ranking", "both": "Both"}
RECALL_KS = (1, 5, 10)


def method_name(config) -> str:
    """The table row of a trained run: "Both", "Ranking", "Model Transfer" (or the objective)."""
    return OBJECTIVE_ROWS.get(config.loss.objective, config.loss.objective)


def evaluate(context: EvalContext) -> list[Row]:
    """One RESULTS row for the run: objective, step, checkpoint, layer, chunk, num_pairs, retrieval (at
    config.eval_layers[0]) {"a->b": {"median_rank", "recall@1", "recall@5", "recall@10"}},
    retrieval_by_layer, dead_units (fraction of the layer's units never above zero on the test items),
    seconds; and a RANKS row with the rank of every test query at that layer (evaluation/versus.py)."""
    start = time.perf_counter()
    config = context.config
    test = context.split("test")
    triplets = triplet_rows(test)
    if not len(triplets):
        raise ValueError("the test split has no row with an image, a sound and a text")
    reps = context.embeddings("test", config.eval_layers)
    chunk = min(config.eval_chunk, len(triplets))
    ranks_by_layer = {
        layer: retrieval.direction_ranks(
            {m: reps[m][layer][triplets] for m in MODALITIES}, DIRECTIONS, chunk
        )
        for layer in config.eval_layers
    }
    by_layer = {
        layer: retrieval.table_of_ranks(ranks, RECALL_KS) for layer, ranks in ranks_by_layer.items()
    }
    layer = config.eval_layers[0]
    student = context.student
    fields = {
        "row": method_name(config),
        "objective": config.loss.objective,
        "step": student.step,
        "checkpoint": student.checkpoint,
        "layer": layer,
        "chunk": chunk,
        "num_pairs": int(len(triplets)),
        "retrieval": by_layer[layer],
        "retrieval_by_layer": by_layer,
        "dead_units": units.dead_unit_fraction(
            {m: reps[m][layer] for m in MODALITIES}, {m: test[f"has_{m}"] for m in MODALITIES}
        ),
        "seconds": time.perf_counter() - start,
    }
    return [
        Row(RESULTS, method_name(config), fields),
        Row(RANKS, method_name(config), ranks_by_layer[layer]),
    ]
