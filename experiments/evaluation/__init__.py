"""The evaluation suite: one context that loads and embeds each split once, evaluators with one
interface (context -> rows), and a registry that evaluate, demo and training's validation run."""
