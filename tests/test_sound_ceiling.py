"""studies/sound_ceiling.py: the run's sound tower learns labels from sounds (no timing asserted)."""

import numpy as np

from experiments.configs import tiny
from studies import sound_ceiling


def _sounds(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Tiny log spectrograms [N, 20, 17] (longer than the tower's 16-frame window): noise, and a band
    of 4 bins for the class, loud over 6 random frames."""
    sounds = rng.normal(0.0, 0.3, (len(labels), 20, 17)).astype(np.float32)
    for sound, label in zip(sounds, labels, strict=True):
        start = rng.integers(0, 14)
        sound[start : start + 6, 5 * label : 5 * label + 4] += 2.0
    return sounds


def test_the_tower_learns_classes_it_can_hear_and_not_shuffled_labels():
    config = tiny.get_config()
    with config.unlocked():
        config.total_steps = 60
        config.augment.update(time_masks=1, time_mask_width=2, freq_masks=1, freq_mask_width=2)
    rng = np.random.default_rng(0)
    labels, test_labels = rng.integers(0, 3, 96), rng.integers(0, 3, 90)
    sounds, test_sounds = _sounds(rng, labels), _sounds(rng, test_labels)
    model, params = sound_ceiling.fit(config, sounds, labels, 3)
    assert sound_ceiling.accuracy(model, params, test_sounds, test_labels) > 0.9
    shuffled = rng.permutation(labels)
    model, params = sound_ceiling.fit(config, sounds, shuffled, 3)
    assert sound_ceiling.accuracy(model, params, test_sounds, test_labels) < 0.6
