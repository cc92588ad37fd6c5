"""How well an own-data run's sound tower can tell the classes apart when it learns them directly: a
reference for the aligned network's sound side.

The run's sound tower (config.model.sound) and one linear layer learn the true labels of the run's
training sounds by cross-entropy, with the run's training windows and masks (config.augment), batch
size, optimizer and number of epochs, and are scored on the validation and test sounds (whole clips,
as evaluation reads them). Beside it the report puts the trained network's classifier transfer onto
sound (the "sound" column of <run>/eval/results.json: a classifier of fc7 trained on one modality,
tested on the test sounds). Where the two agree, what limits the sound directions is what this tower
learns from these clips, not the alignment.

python -m studies.sound_ceiling --out=/tmp/own --kinds=countries,instruments [--seed=N]

Reads <out>/<kind>/run, left there by studies.own_data with the same --out; writes
studies/results/sound_ceiling-<date>.json (--seed=N > 0, naming the fixture draw the runs were
trained on: sound_ceiling-seedN-<date>.json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from alignment.models.network import create_sound_tower
from alignment.models.sound import SoundTower
from data_pipelines import augment, input_pipeline
from experiments.runtime import datasets, run_config
from experiments.runtime.optimizer import make_optimizer
from studies.own_data import MODALITIES, write_report

SPLIT_FEATURES = ("sound", "label", "has_sound")


class SoundClassifier(nn.Module):
    """Spectrograms [B, T, F] -> class logits [B, num_classes]: the sound tower, then a linear layer."""

    tower: SoundTower
    num_classes: int

    @nn.compact
    def __call__(self, spectrograms: jax.Array) -> jax.Array:
        return nn.Dense(self.num_classes, name="classes")(self.tower(spectrograms))


def sound_classifier(config: Any, num_classes: int) -> SoundClassifier:
    """The run's sound tower (config.model) under a linear layer of num_classes."""
    return SoundClassifier(create_sound_tower(config.model), num_classes)


def fit(
    config: Any, sounds: np.ndarray, labels: np.ndarray, num_classes: int, seed: int = 0
) -> tuple[SoundClassifier, Any]:
    """Trains a sound_classifier on sounds [N, T, F] (stored clips) and labels [N] for the students'
    config.total_steps batches of config.batch_size clips with their optimizer (a resolved config),
    each batch windowed and masked as training's (config.augment); returns (model, params)."""
    model = sound_classifier(config, num_classes)
    batch = min(config.batch_size, len(sounds))
    optimizer = make_optimizer(config.optimizer, config.total_steps)
    window = config.model.sound.time_steps
    params = model.init(jax.random.key(seed), jnp.zeros((1, window, sounds.shape[2])))
    opt_state = optimizer.init(params)
    cfg = augment.AugmentConfig.from_config(config.augment, window)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss_fn(p):
            logits = model.apply(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(seed)
    for _ in range(config.total_steps):
        rows = rng.choice(len(sounds), batch, replace=False)
        x = augment.augment_sounds(sounds[rows], cfg, rng, batch, slice(None))
        params, opt_state = step(params, opt_state, x, labels[rows])
    return model, params


def accuracy(model: SoundClassifier, params: Any, sounds: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy on whole clips sounds [N, T, F] (in batches of 256)."""
    predict = jax.jit(lambda p, x: jnp.argmax(model.apply(p, x), axis=-1))
    hits = sum(int(np.sum(np.asarray(predict(params, sounds[i : i + 256])) == labels[i : i + 256]))
               for i in range(0, len(sounds), 256))  # fmt: skip
    return hits / max(1, len(sounds))


def _sounds(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(sounds [N, T, F], labels [N]) of the rows of `split` that have a sound."""
    arrays = input_pipeline.load_split(builder, split, SPLIT_FEATURES)
    rows = np.flatnonzero(arrays["has_sound"])
    return arrays["sound"][rows], arrays["label"][rows]


def measure(run_dir: str, seed: int = 0) -> dict[str, Any]:
    """The ceiling of the run in run_dir against its network's transfer onto sound."""
    saved = run_config.load(run_dir).config
    builder = datasets.open_built(saved.data)
    config = datasets.resolve_config(saved, builder)
    train = _sounds(builder, "train")
    if not train[1].size or train[1].min() < 0:
        raise SystemExit(f"sound_ceiling: the train sounds of {run_dir} have no labels to learn")
    num_classes = int(train[1].max()) + 1
    start = time.perf_counter()
    model, params = fit(config, *train, num_classes, seed)
    report: dict[str, Any] = {"train_sounds": len(train[0]), "classes": num_classes}
    for split in ("validation", "test"):
        if split in builder.info.splits:
            report[f"{split}_accuracy"] = accuracy(model, params, *_sounds(builder, split))
    report["seconds"] = time.perf_counter() - start
    results_path = os.path.join(run_dir, "eval", "results.json")
    if os.path.isfile(results_path):
        with open(results_path) as f:
            results = json.load(f)
        report["network_transfer_to_sound"] = {
            name: {source: entry["transfer"]["table"][source]["sound"] for source in MODALITIES}
            for name, entry in results.items()
            if isinstance(entry, dict) and entry.get("transfer")
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", default="countries,instruments")
    parser.add_argument("--out", default="/tmp/own_data_study")
    parser.add_argument("--seed", type=int, default=0, help="the fixture draw (names the report)")
    args = parser.parse_args()
    report: dict[str, Any] = {"date": datetime.date.today().isoformat(), "seed": args.seed,
                              "kinds": {}}  # fmt: skip
    for kind in args.kinds.split(","):
        run_dir = os.path.join(args.out, kind, "run")
        if not os.path.isfile(os.path.join(run_dir, run_config.CONFIG_FILE)):
            raise SystemExit(f"sound_ceiling: no run in {run_dir}: run studies.own_data first")
        report["kinds"][kind] = measure(run_dir)
        print(f"sound_ceiling: {kind}: {json.dumps(report['kinds'][kind])}", flush=True)
    write_report("sound_ceiling" if args.seed == 0 else f"sound_ceiling-seed{args.seed}", report)


if __name__ == "__main__":
    main()
