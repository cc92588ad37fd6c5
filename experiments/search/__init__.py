"""Interactive search of a trained run: queries from files or sentences, nearest test items, and the
notebook's helpers."""
