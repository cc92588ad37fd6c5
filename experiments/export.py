"""Writes a trained run's inference bundle: its network, word vectors and front-end settings, loadable
with jax, numpy and the front-ends alone (experiments/bundle/load.py; docs/export.md).

    python -m experiments.export --workdir=runs/world --out=runs/world/bundle

The run's saved config is used (--config and --config.* overrides apply on top); the student is the one
evaluation restores (config.eval_checkpoint).
"""

from absl import flags

from experiments.bundle.export import export_bundle
from experiments.cli import launch

OUT = flags.DEFINE_string("out", None, "The bundle folder to write.")


def main(argv):
    del argv
    launch.require(OUT)
    launch.initialize()
    manifest = export_bundle(launch.config(), launch.WORKDIR.value, OUT.value)
    dims = ", ".join(f"{layer} {dim}" for layer, dim in manifest["dims"].items())
    print(
        f"export: wrote {OUT.value} (step {manifest['step']}, {dims}, "
        f"{len(manifest['files'])} files; load with experiments.bundle.load.load_bundle)"
    )


if __name__ == "__main__":
    launch.run(main)
