"""The training input at scale: host memory against data set size, bytes per stored row, and the CPU
cores one H200 would need to be fed at the paper config's shapes.

Data sets of random rows at a config's stored shapes (image uint8 [S,S,3], sound float32 [T,F], text
float32 [L,D], stored as the builders store them: ArrayRecord, one row per example, half image+sound, half
image+text; other splits of image+sound+text rows on request, for evaluation) are written once into a
scratch folder; each measurement streams data_pipelines.input_pipeline.train_batches in a fresh process,
so its peak RSS is the stream's alone.

python -m benchmarks.input_scale --data_dir=DIR --batch=8 --steps=64 --workers=2  # one stream: a JSON line
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from benchmarks import common
from data_pipelines import input_pipeline
from data_pipelines.builders.base import STORAGE_FORMAT
from data_pipelines.builders.features import FeatureSpec, save_label_names

# One H200: ~990 TFLOP/s dense bf16; the paper step at 40% of it (benchmarks/NOTES.md).
H200_BF16_FLOPS = 990e12
TARGET_MFU = 0.4
# XLA's count for the paper config's train step, 8 image+sound and 8 image+text pairs (train_paper section).
PAPER_FLOPS_PER_EXAMPLE = 134.6e9 / 16
# Row i's label is i % CLASSES; no row has a fine label.
CLASSES = 10


@dataclasses.dataclass(eq=False)
class _RowsConfig(tfds.core.BuilderConfig):
    spec: FeatureSpec = dataclasses.field(default_factory=FeatureSpec)
    rows: int = 0
    # Splits besides train (name -> rows) whose every row holds an image, a sound and a text: the
    # triplets evaluation ranks and probes.
    triplets: dict[str, int] = dataclasses.field(default_factory=dict)


class RandomRows(tfds.core.GeneratorBasedBuilder, skip_registration=True):  # type: ignore[call-arg]
    """`rows` train rows of random content at `spec`'s shapes (image+sound and image+text in turn),
    and a split of triplets for each entry of `triplets`."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=self.builder_config.spec.features())

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        del dl_manager
        config = self.builder_config
        splits = {"train": self._generate_examples(config.rows, seed=0, triplets=False)}
        # Seeds 1, 2, ...: the other splits draw rows of their own, and the train rows stay those of a
        # data set without them.
        for seed, (name, rows) in enumerate(config.triplets.items(), start=1):
            splits[name] = self._generate_examples(rows, seed, triplets=True)
        return splits

    def _generate_examples(self, rows: int, seed: int, triplets: bool):
        spec = self.builder_config.spec
        size, (steps, bins), (words, dim) = spec.image_size, spec.audio.shape, spec.text.shape
        rng = np.random.default_rng(seed)
        for i in range(rows):
            with_sound = triplets or i % 2 == 0
            with_text = triplets or not with_sound
            yield (
                f"row-{i:07d}",
                {
                    "id": f"row-{i:07d}",
                    "image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                    "sound": (rng.random((steps, bins), dtype=np.float32) * with_sound).astype(
                        spec.float_storage
                    ),
                    "text": (
                        rng.standard_normal((words, dim), dtype=np.float32) * with_text
                    ).astype(spec.float_storage),
                    "text_mask": np.full(words, with_text),
                    "caption": "random words" if with_text else "",
                    "has_image": True,
                    "has_sound": with_sound,
                    "has_text": with_text,
                    "label": i % CLASSES,
                    "fine_label": -1,
                },
            )


def write_rows(
    data_dir: str, config_name: str, rows: int, triplets: Mapping[str, int] | None = None
) -> tuple[str, float]:
    """(folder of the built data set, stored bytes per row: records and array tables) of `rows` random train rows at a config's
    shapes and, for each `triplets` entry (split name -> rows), a split of image+sound+text rows, with
    their label names (label_names.json), so that the teacher can learn their labels."""
    triplets = dict(triplets or {})
    spec = FeatureSpec.from_config(common.load_config(config_name).data)
    name = "-".join([config_name, str(rows), *(f"{split}{n}" for split, n in triplets.items())])
    config = _RowsConfig(name=name, spec=spec, rows=rows, triplets=triplets)
    builder = RandomRows(data_dir=data_dir, config=config, file_format=STORAGE_FORMAT)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    input_pipeline.write_row_index(builder)
    save_label_names(os.fspath(builder.data_dir), [f"class-{k}" for k in range(CLASSES)], [])
    # Every file of the data set: its records, and the array tables and modality index beside them.
    stored = sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(builder.data_dir)
        for name in names
    )
    return os.fspath(builder.data_dir), stored / (rows + sum(triplets.values()))


def _float_storage(config_name: str) -> str:
    return FeatureSpec.from_config(common.load_config(config_name).data).float_storage


def _stream(folder: str, batch: int, steps: int, workers: int, warmup: int, host: int = 0,
            hosts: int = 1) -> dict[str, Any]:  # fmt: skip
    """Streams `steps` batches (after `warmup`) as host `host` of `hosts`, whose batch is batch/hosts."""
    started = time.perf_counter()
    batches = input_pipeline.train_batches(
        folder, batch, seed=0, workers=workers, process_index=host, process_count=hosts
    )
    next(batches)
    first_batch_s = time.perf_counter() - started
    for _ in range(warmup):
        next(batches)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    for _ in range(steps):
        next(batches)
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    batches.close()
    examples = steps * 2 * (batch // hosts)
    return {
        "peak_rss_bytes": peak_rss_bytes(),
        "examples_per_s": examples / elapsed,
        # CPU seconds of this process and its input workers over the same steps: what the stream
        # costs whatever else the machine runs.
        "cpu_s": cpu,
        "examples_per_cpu_s": examples / cpu,
        "steps": steps,
        "workers": workers,
        "first_batch_s": first_batch_s,
    }


def _cpu_seconds() -> float:
    """User + system CPU seconds so far of this process and its live input workers (/proc on Linux;
    elsewhere this process only)."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for child in multiprocessing.active_children():
        try:
            with open(f"/proc/{child.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: Linux carries that over
    from the parent across fork and exec, so a worker would report its launcher's peak."""
    if not os.path.exists("/proc/self/status"):  # not Linux: ru_maxrss is the one measure there
        return common.peak_rss_bytes()
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def _command(
    folder: str, batch: int, steps: int, workers: int, host: int = 0, hosts: int = 1
) -> list[str]:
    return [sys.executable, "-m", "benchmarks.input_scale", f"--data_dir={folder}", f"--batch={batch}",
            f"--steps={steps}", f"--workers={workers}", f"--host={host}", f"--hosts={hosts}"]  # fmt: skip


def launch(commands: list[list[str]]) -> list[dict[str, Any]]:
    """Runs the worker commands at once (one process each); the JSON object each prints last."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    running = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for c in commands
    ]
    results = []
    for command, process in zip(commands, running, strict=True):
        out, err = process.communicate()
        if process.returncode:
            raise RuntimeError(f"benchmark worker {' '.join(command[1:])} failed:\n{err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def measure_memory(
    config_name: str = "paper", rows: int = 256, factor: int = 10, batch: int = 8, steps: int = 48
) -> dict[str, Any]:
    """Peak RSS of a process streaming `steps` batches (`batch` rows per stream) from data sets of
    `rows` and `factor * rows` rows at `config_name`'s shapes; the ratio should stay near 1. The
    batches are made in that process (workers=0): each input worker process holds the same reader."""
    with tempfile.TemporaryDirectory(prefix="shr-input-memory-") as scratch:
        sizes, peaks, per_row = [rows, factor * rows], [], []
        for n in sizes:
            folder, bytes_per_row = write_rows(scratch, config_name, n)
            peaks.append(launch([_command(folder, batch, steps, workers=0)])[0]["peak_rss_bytes"])
            per_row.append(bytes_per_row)
        world_bytes_per_row = write_rows(scratch, "world", 64)[1]
    return {
        "config": config_name,
        "rows": sizes,
        "peak_rss_bytes": peaks,
        "rss_ratio": peaks[1] / peaks[0],
        "rows_ratio": factor,
        "data_set_bytes": [int(n * b) for n, b in zip(sizes, per_row, strict=True)],
        "bytes_per_row": {config_name: per_row[0], "world": world_bytes_per_row},
        "float_storage": _float_storage(config_name),
        "batch_per_stream": batch,
        "steps": steps,
    }


def measure_throughput(
    config_name: str = "paper", rows: int = 2048, batch: int = 32, steps: int = 32
) -> dict[str, Any]:
    """Examples/s of the training stream at `config_name`'s shapes with every core busy (one training
    process whose input workers are as many processes as the host has cores, `batch` rows per stream
    and core in each step: the rows a step reads are scattered over the data set as in training), per core, and the cores
    one H200 at TARGET_MFU of its bf16 peak would need (PAPER_FLOPS_PER_EXAMPLE); with the seconds to
    the first batch (the workers' start-up)."""
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="shr-input-rate-") as scratch:
        folder, bytes_per_row = write_rows(scratch, config_name, rows)
        (run,) = launch([_command(folder, batch * cores, steps, workers=cores)])
    rate = run["examples_per_s"]
    # Two readings of "per core": the wall-clock rate over the host's cores (exact on a quiet host,
    # pessimistic on a shared one) and the examples per CPU second the stream's processes used (the
    # cost of a row, whatever else runs). cores_per_h200 is the larger of the two.
    per_core_wall, per_cpu_s = rate / cores, run["examples_per_cpu_s"]
    per_core = min(per_core_wall, per_cpu_s)
    needed = TARGET_MFU * H200_BF16_FLOPS / PAPER_FLOPS_PER_EXAMPLE
    return {
        "config": config_name,
        "cores": cores,
        "examples_per_s": rate,
        "examples_per_s_per_core": per_core_wall,
        "examples_per_cpu_s": per_cpu_s,
        "workers": cores,
        "batch_per_stream_per_core": batch,
        "rows": rows,
        "first_batch_s": run["first_batch_s"],
        "bytes_per_row": bytes_per_row,
        "float_storage": _float_storage(config_name),
        "input_bytes_per_s_per_core": per_core * bytes_per_row,
        "h200_examples_per_s": needed,
        "cores_per_h200": needed / per_core,
        "cores_per_h200_wall": needed / per_core_wall,
        "cores_per_h200_cpu": needed / per_cpu_s,
        "derivation": (
            f"{TARGET_MFU:.0%} x {H200_BF16_FLOPS / 1e12:.0f} TFLOP/s / "
            f"{PAPER_FLOPS_PER_EXAMPLE / 1e9:.2f} GFLOP per example = {needed:,.0f} examples/s; "
            f"/ {per_core_wall:,.0f} examples/s per core (wall, {cores} cores) = "
            f"{needed / per_core_wall:.1f} cores; / {per_cpu_s:,.0f} examples per CPU second = "
            f"{needed / per_cpu_s:.1f} cores"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--host", type=int, default=0)
    parser.add_argument("--hosts", type=int, default=1)
    args = parser.parse_args()
    result = _stream(
        args.data_dir, args.batch, args.steps, args.workers, args.warmup, args.host, args.hosts
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
