"""benchmarks/profile_step.py's attribution of traced XLA ops to model modules (no timing is asserted)."""

import jax
import jax.numpy as jnp
import pytest

from benchmarks import profile_step

HLO = """
ENTRY %main {
  %ynn_fusion.3 = f32[64,20,20,32]{3,2,1,0} fusion(%a, %b), kind=kCustom, metadata={op_name="jit(step)/jvp(TriModalNet)/vision/features/conv1/conv_general_dilated" stack_frame_id=1}
  %add_select_fusion = f32[64,20,20,32]{3,2,1,0} fusion(%c), metadata={op_name="jit(step)/transpose(jvp(TriModalNet))/vision/features/jit(relu)/select_n"}
  %transpose_copy_fusion.2 = f32[3,40,40,64]{3,2,1,0} fusion(%d), kind=kLoop
  ROOT %all-reduce = (f32[256]{0}) all-reduce(%e), metadata={op_name="jit(step)/psum_invariant"}
}
"""


def test_ops_are_attributed_to_pass_and_module():
    sources = profile_step.instruction_sources(HLO)
    assert set(sources) == {
        "ynn_fusion.3",
        "add_select_fusion",
        "transpose_copy_fusion.2",
        "all-reduce",
    }
    assert profile_step.attribute(sources["ynn_fusion.3"]) == ("forward", "vision/features/conv1")
    assert profile_step.attribute(sources["add_select_fusion"]) == ("backward", "vision/features")
    assert profile_step.attribute(sources["transpose_copy_fusion.2"]) == (
        "",
        profile_step.NO_SOURCE,
    )
    assert profile_step.attribute(sources["all-reduce"])[1].startswith("(outside the model")


def test_summary_adds_op_time_per_step_and_ignores_other_events():
    sources = profile_step.instruction_sources(HLO)
    events = [
        {"ph": "X", "name": "ynn_fusion.3", "dur": 3000.0},
        {"ph": "X", "name": "ynn_fusion.3", "dur": 1000.0},
        {"ph": "X", "name": "add_select_fusion", "dur": 2000.0},
        {"ph": "X", "name": "ThunkExecutor::Execute", "dur": 9e6},  # not an HLO op
        {"ph": "M", "name": "ynn_fusion.3", "dur": 9e6},  # metadata, not a timed event
    ]
    summary = profile_step.summarize(profile_step.op_times(events, sources), sources, steps=2)
    assert summary["by_module_ms"] == {
        "forward vision/features/conv1": pytest.approx(2.0),
        "backward vision/features": pytest.approx(1.0),
    }
    assert summary["op_ms_total"] == pytest.approx(3.0)
    assert [row["op"] for row in summary["ops"]] == ["ynn_fusion.3", "add_select_fusion"]


def test_sources_of_a_real_compiled_function_name_its_operations():
    def f(x):
        return jnp.sum(jnp.tanh(x) @ x.T)

    x = jnp.ones((8, 8))
    grad = jax.jit(jax.grad(f)).lower(x).compile()
    sources = profile_step.instruction_sources(grad.as_text())
    assert sources
    named = [s for s in sources.values() if s]
    assert any("tanh" in s for s in named)
    assert any(profile_step.attribute(s)[0] == "backward" for s in named)
