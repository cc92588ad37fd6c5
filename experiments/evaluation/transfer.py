"""Zero-shot classifier transfer (Table 3): a linear classifier trained on one modality's representation
(config.eval_layers[0]) and tested on every modality's.

It trains on the labeled rows of the validation split and tests on the labeled test rows; without a
labeled validation split of every modality the labeled test rows are halved (first half trains, second
half tests). A data set without labeled test rows of every modality gets "transfer": None.
"""

from __future__ import annotations

from alignment import transfer
from alignment.streams import MODALITIES
from experiments.evaluation.context import EvalContext, labeled_rows
from experiments.evaluation.retrieval import method_name
from experiments.evaluation.rows import RESULTS, Row


def evaluate(context: EvalContext) -> list[Row]:
    """One RESULTS row for the run: {"transfer": {"layer", "train_items", "num_train", "num_classes",
    "table"} or None}."""
    config = context.config
    test = context.split("test")
    test_rows = labeled_rows(test)
    if not all(len(r) for r in test_rows.values()):
        return [Row(RESULTS, method_name(config), {"transfer": None})]
    layer = config.eval_layers[0]
    test_reps = context.embeddings("test", [layer])
    train = None
    if context.has_split("validation"):
        val = context.split("validation")
        rows = labeled_rows(val)
        if all(len(r) for r in rows.values()):
            reps = context.embeddings("validation", [layer])
            train = {m: (reps[m][layer][rows[m]], val["label"][rows[m]]) for m in MODALITIES}
            source = "validation split"
    if train is None:
        halves = {m: (r[: (len(r) + 1) // 2], r[(len(r) + 1) // 2 :]) for m, r in test_rows.items()}
        train = {m: (test_reps[m][layer][h[0]], test["label"][h[0]]) for m, h in halves.items()}
        test_rows = {m: h[1] for m, h in halves.items()}
        source = "first half of the labeled test rows"
    evaluation = {m: (test_reps[m][layer][r], test["label"][r]) for m, r in test_rows.items()}
    names = context.label_names
    matrix = transfer.transfer_matrix(train, evaluation, len(names))
    fields = {
        "layer": layer,
        "train_items": source,
        "num_train": {m: len(train[m][1]) for m in MODALITIES},
        "num_classes": len(names),
        "table": matrix.table(),
    }
    return [Row(RESULTS, method_name(config), {"transfer": fields})]
