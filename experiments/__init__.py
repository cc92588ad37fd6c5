"""absl entry points and ml_collections configs: the only place that defines flags."""
