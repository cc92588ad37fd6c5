"""Interactive search of a trained run: queries from files or sentences, nearest test items
(index.py); the notebook's run (demo_runs.py) and how it shows matches (views.py)."""
