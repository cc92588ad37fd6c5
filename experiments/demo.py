"""The main job: world data -> teacher -> students -> evaluation -> report."""

from absl import app


def main(argv):
    del argv
    print("demo: the pipeline stages are not built yet.")


if __name__ == "__main__":
    app.run(main)
