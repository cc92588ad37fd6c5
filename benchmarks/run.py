"""Runs every benchmark and writes benchmarks/results/<date>.json."""


def main() -> None:
    print("bench: no benchmark is built yet.")


if __name__ == "__main__":
    main()
