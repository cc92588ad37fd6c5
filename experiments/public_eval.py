"""Scores a trained run on a public set, read from the folder it is distributed in.

    python -m experiments.public_eval --workdir=runs/mine --set=esc50 --path=/data/ESC-50-master
    python -m experiments.public_eval --workdir=runs/mine --set=clotho --path=/data/clotho
    python -m experiments.public_eval --workdir=... --set=urbansound8k --path=... --prompts=mine.txt

Public sets: esc50, urbansound8k (zero-shot accuracy from text prompts and a leave-one-fold-out linear
probe), clotho, audiocaps, coco, flickr30k (caption retrieval both ways: R@1/5/10, median rank, mAP@10).
The run's saved config is used (--config.* overrides apply on top); the best checkpoint when training
kept one. Writes <workdir>/public_eval/NAME.json and NAME.md (also printed). docs/evaluation.md,
"Public data sets", gives each folder layout and protocol.
"""

from absl import flags

from data_pipelines.public_sets import LOADERS
from data_pipelines.public_sets.windows import POOLING
from experiments.cli import launch
from experiments.workflows.public_eval import run_public_eval

SET = flags.DEFINE_enum("set", None, sorted(LOADERS), "The public set to score.")
PATH = flags.DEFINE_string("path", None, "The public set's folder, as distributed.")
POOL = flags.DEFINE_enum("pooling", "mean", POOLING, "How a long clip's window embeddings pool.")
PROMPTS = flags.DEFINE_string(
    "prompts",
    None,
    "A text file of prompt templates, one a line, {} for the class (classification).",
)
flags.mark_flags_as_required(["set", "path"])


def main(argv):
    del argv
    launch.initialize()
    print(
        run_public_eval(
            launch.config(),
            launch.WORKDIR.value,
            SET.value,
            PATH.value,
            POOL.value,
            PROMPTS.value,
        )
    )


if __name__ == "__main__":
    launch.run(main)
