"""The evaluation API the entry points call: one checkpoint, the baselines, and the tables.

    rows = baseline_results(config, builder, workdir)          # Random, Linear Reg., CCA, Normalized CCA
    rows["Both"] = evaluate_checkpoint(config, run_dir)        # one row per trained objective
    markdown = write_tables(rows, out_dir)                     # tables.md (write_report adds json + plot)

What each computes is documented in checkpoint_eval (retrieval, classifier transfer, hidden units),
baseline_eval (the linear baselines and their features) and report_tables (the markdown and plots).
"""

from experiments.baseline_eval import baseline_results
from experiments.checkpoint_eval import DIRECTIONS, OBJECTIVE_ROWS, evaluate_checkpoint
from experiments.report_tables import plot_median_ranks, tables_markdown, write_report, write_tables

__all__ = [
    "DIRECTIONS",
    "OBJECTIVE_ROWS",
    "baseline_results",
    "evaluate_checkpoint",
    "plot_median_ranks",
    "tables_markdown",
    "write_report",
    "write_tables",
]
