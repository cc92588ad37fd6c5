"""Scores a trained run on a public benchmark, read from the folder it is distributed in.

    python -m experiments.benchmark --workdir=runs/mine --benchmark=esc50 --path=/data/ESC-50-master
    python -m experiments.benchmark --workdir=runs/mine --benchmark=clotho --path=/data/clotho
    python -m experiments.benchmark --workdir=... --benchmark=urbansound8k --path=... --prompts=mine.txt

Benchmarks: esc50, urbansound8k (zero-shot accuracy from text prompts and a leave-one-fold-out linear
probe), clotho, audiocaps, coco, flickr30k (caption retrieval both ways: R@1/5/10, median rank, mAP@10).
The run's saved config is used (--config.* overrides apply on top); the best checkpoint when training
kept one. Writes <workdir>/benchmarks/NAME.json and NAME.md (also printed). The README's "Benchmarks"
section gives each folder layout and protocol.
"""

from absl import flags

from data_pipelines.benchmarks import LOADERS
from data_pipelines.benchmarks.windows import POOLING
from experiments.cli import launch
from experiments.workflows.benchmark import run_benchmark

BENCHMARK = flags.DEFINE_enum("benchmark", None, sorted(LOADERS), "The benchmark to score.")
PATH = flags.DEFINE_string("path", None, "The benchmark's folder, as distributed.")
POOL = flags.DEFINE_enum("pooling", "mean", POOLING, "How a long clip's window embeddings pool.")
PROMPTS = flags.DEFINE_string(
    "prompts",
    None,
    "A text file of prompt templates, one a line, {} for the class (classification).",
)
flags.mark_flags_as_required(["benchmark", "path"])


def main(argv):
    del argv
    launch.initialize()
    print(
        run_benchmark(
            launch.config(),
            launch.WORKDIR.value,
            BENCHMARK.value,
            PATH.value,
            POOL.value,
            PROMPTS.value,
        )
    )


if __name__ == "__main__":
    launch.run(main)
