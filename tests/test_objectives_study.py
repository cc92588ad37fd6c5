"""studies.objectives: every (objective, kind) run of each config it compares is one the loss accepts."""

import pytest

from alignment import losses
from studies import objectives as study


@pytest.mark.parametrize("name", study.CONFIGS)
def test_every_run_of_the_study_is_a_valid_loss_config(name, tmp_path):
    config = study._config(name, str(tmp_path / "data"), str(tmp_path / "teacher"), steps=None)
    assert config.eval_every == 0 and config.eval_every_epochs == 0
    for objective in study.OBJECTIVES:
        for kind in study.KINDS:
            run, reset = study.run_config(config, objective, kind)
            losses.check_config(run.loss, run.model)
            assert (run.loss.objective, run.loss.ranking_kind) == (objective, kind)
            # Only the hinge with the KL term keeps a same-class weight other than 1.
            keeps = objective == "both" and kind == "hinge"
            weight = config.loss.same_class_weight if keeps else 1.0
            assert run.loss.same_class_weight == weight
            assert reset == ({} if weight == config.loss.same_class_weight else
                             {"loss.same_class_weight": 1.0})  # fmt: skip
    # own_data weighs same-class negatives, so the study has something to reset there.
    if name == "own_data":
        assert config.loss.same_class_weight != 1.0
