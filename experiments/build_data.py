"""Builds the data set a config names into config.data.data_dir (offline; once).

python -m experiments.build_data --config=world
python -m experiments.build_data --config=own_data --config.data.source=/path/to/folder
python -m experiments.build_data --config=own_data --config.data.source=/path/to/folder \
    --beam_pipeline_options=runner=DirectRunner,direct_num_workers=8,direct_running_mode=multi_processing
"""

from absl import flags, logging

from experiments.cli import launch
from experiments.runtime import datasets

BEAM_PIPELINE_OPTIONS = flags.DEFINE_string(
    "beam_pipeline_options",
    "",
    "Encode the rows of a manifest, video or COCO folder as an Apache Beam pipeline with these "
    "comma-separated options, e.g. runner=DirectRunner,direct_num_workers=8,direct_running_mode="
    "multi_processing, or runner=DataflowRunner,project=P,region=R,temp_location=gs://B/tmp. "
    "Empty: Beam only with config.data.beam (then on the DirectRunner).",
)


def main(argv):
    del argv
    launch.initialize()
    builder = datasets.build(launch.config().data, BEAM_PIPELINE_OPTIONS.value)
    logging.info("data: ready at %s", builder.data_dir)


if __name__ == "__main__":
    launch.run(main)
