"""Report writing: the paper's tables, results.json and plots from evaluation rows, and the demo report."""
