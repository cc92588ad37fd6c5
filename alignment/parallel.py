"""Data parallelism over a 'data' mesh axis, optionally with the parameters sharded over an 'fsdp' axis:
batch placement, state creation, the sharded steps.

The step is written per device with `jax.shard_map` over every device of the mesh on one 'data' axis
(data_mesh): each device runs the towers on its share of the batch, the ranking loss sees the whole
global batch as negatives (all_gather of the positive side), and gradients and metrics are averaged
with pmean, so the result equals the single-device step on the global batch.

Parameters and optimizer state are replicated on a 1-D mesh (make_mesh(fsdp=1)). On a 2-D
('data', 'fsdp') mesh they are stored sharded over 'fsdp' (state_shardings: each array along its
largest dimension that the axis divides, big_vision's rule); the jitted step gathers them before the
per-device code, which therefore sees whole parameters on either mesh, and the optimizer updates each
shard where it lives. The batch is split over both axes (over all devices), as on a 1-D mesh.
"""

import collections
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax, shard_map
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from alignment import losses
from alignment.chunked_loss import Ring
from alignment.losses import objective
from alignment.models.network import TriModalNet, init_params
from alignment.models.text import mean_words
from alignment.streams import STEP_INPUTS, STREAMS
from alignment.train_state import TrainState

AXIS = "data"
FSDP_AXIS = "fsdp"
# The TrainState fields that FSDP shards: the others are scalars and the PRNG key.
_SHARDED_FIELDS = ("params", "opt_state")

TrainStep = Callable[..., tuple[TrainState, dict[str, jax.Array]]]


def make_mesh(devices: Sequence[jax.Device] | None = None, fsdp: int = 1) -> Mesh:
    """Mesh over `devices` (default: every device of every host), Auto axis types: 1-D 'data' when
    fsdp == 1; else 2-D ('data', 'fsdp') of shape (len(devices) // fsdp, fsdp), consecutive devices
    (those of one host first) forming one 'fsdp' group."""
    flat = np.asarray(jax.devices() if devices is None else devices)
    if fsdp == 1:
        return Mesh(flat, (AXIS,), axis_types=(AxisType.Auto,))
    if fsdp < 1 or flat.size % fsdp:
        raise ValueError(f"mesh.fsdp={fsdp} must be a positive divisor of the {flat.size} devices")
    grid = flat.reshape(-1, fsdp)
    return Mesh(grid, (AXIS, FSDP_AXIS), axis_types=(AxisType.Auto, AxisType.Auto))


def data_mesh(mesh: Mesh) -> Mesh:
    """The 1-D 'data' mesh over `mesh`'s devices in order (`mesh` itself when it is 1-D): the mesh the
    per-device code and the batch use, so that a batch split over ('data', 'fsdp') is split over 'data'."""
    if mesh.axis_names == (AXIS,):
        return mesh
    return Mesh(mesh.devices.reshape(-1), (AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def fsdp_spec(shape: Sequence[int], size: int) -> P:
    """big_vision's fsdp rule: 'fsdp' on the largest dimension of `shape` that `size` divides (the
    first of equals), P() when none does (scalars, odd sizes)."""
    divisible = [i for i, n in enumerate(shape) if n % size == 0]
    if size == 1 or not divisible:
        return P()
    axis = max(divisible, key=lambda i: shape[i])
    return P(*(FSDP_AXIS if i == axis else None for i in range(len(shape))))


def state_shardings(tree: Any, mesh: Mesh) -> Any:
    """NamedShardings of `tree`'s leaves (arrays or ShapeDtypeStructs): a TrainState's params and
    opt_state sharded over 'fsdp' by fsdp_spec when `mesh` has that axis; everything else (its step,
    rng and counters, any other tree such as the teacher's parameters) replicated."""
    if not isinstance(tree, TrainState) or FSDP_AXIS not in mesh.axis_names:
        return jax.tree.map(lambda _: replicated(mesh), tree)
    size = mesh.shape[FSDP_AXIS]

    def leaf_sharding(path: tuple, x: Any) -> NamedSharding:
        if path[0].name in _SHARDED_FIELDS:
            return NamedSharding(mesh, fsdp_spec(x.shape, size))
        return replicated(mesh)

    return jax.tree_util.tree_map_with_path(leaf_sharding, tree)


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Host-local numpy arrays [B_host, ...] -> global arrays [B_host * hosts, ...] split over every
    device of `mesh` (over 'data' of data_mesh(mesh))."""
    sharding = NamedSharding(data_mesh(mesh), P(AXIS))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), tree)


def prefetch_to_mesh(batches: Iterable[Any], mesh: Mesh, ahead: int = 2) -> Iterator[Any]:
    """shard_batch of each host batch, issued `ahead` batches before the consumer takes it: transfers
    are asynchronous, so the next batches cross to the devices while the current step runs."""
    queue: collections.deque = collections.deque()
    for batch in batches:
        queue.append(shard_batch(batch, mesh))
        if len(queue) > ahead:
            yield queue.popleft()
    yield from queue


def _example_inputs(batch: Mapping[str, Mapping[str, Any]]) -> dict[str, jax.ShapeDtypeStruct]:
    """One-example input shapes by modality, taken from whichever stream holds them."""
    example = {}
    for stream in batch.values():
        for name in ("image", "sound", "text", "text_mask"):
            if name in stream:
                x = stream[name]
                example[name] = jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype)
    return example


def create_train_state(
    model: TriModalNet,
    optimizer: optax.GradientTransformation,
    rng: jax.Array,
    example_batch: Mapping[str, Mapping[str, Any]],
    mesh: Mesh,
    loss_cfg: Any = None,
) -> TrainState:
    """A TrainState built directly on the mesh, laid out by state_shardings (eval_shape + jitted init,
    no host copy).

    example_batch: a batch of the step's form; only its shapes and dtypes are used (modalities it lacks
    take the shapes the model was configured with). loss_cfg: config.loss, whose learned scalars join
    the parameters (losses.with_loss_params).
    """
    shapes = _example_inputs(example_batch)

    def params_init(rng: jax.Array) -> Any:
        example = {name: jnp.zeros(s.shape, s.dtype) for name, s in shapes.items()}
        return losses.with_loss_params(init_params(model, rng, example), loss_cfg)

    return init_state_on_mesh(params_init, optimizer, rng, mesh)


def train_state_init(
    params_init: Callable[[jax.Array], Any], optimizer: optax.GradientTransformation
) -> Callable[[jax.Array], TrainState]:
    """rng -> a fresh TrainState: params_init(one half of rng) and the optimizer's state of them."""

    def init(rng: jax.Array) -> TrainState:
        init_rng, state_rng = jax.random.split(rng)
        params = params_init(init_rng)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=optimizer.init(params),
            rng=state_rng,
            nonfinite_count=jnp.zeros((), jnp.int32),
        )

    return init


def init_state_on_mesh(
    params_init: Callable[[jax.Array], Any],
    optimizer: optax.GradientTransformation,
    rng: jax.Array,
    mesh: Mesh,
) -> TrainState:
    """train_state_init's state built directly on the mesh (eval_shape + jitted init), laid out by
    state_shardings: replicated on a 1-D mesh, params and opt_state sharded over 'fsdp' on a 2-D one."""
    init = train_state_init(params_init, optimizer)
    abstract = jax.eval_shape(init, rng)
    shardings = state_shardings(abstract, mesh)
    return jax.jit(init, out_shardings=shardings, compiler_options=init_compiler_options())(rng)


def init_compiler_options() -> dict[str, Any]:
    """Compiler options for functions that run once, such as parameter initialization.

    On CPU, LLVM optimization of the unrolled random-number generators dominates the compile time of an
    init (about 10x); running it once unoptimized is far cheaper.
    """
    return {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else {}


def _step_inputs(batch: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The inputs the step reads, float16 (compact storage, data_pipelines.records) widened to float32
    on the device: the same values as widening on the host, at half the bytes to copy and transfer."""

    def widen(x):
        return x.astype(jnp.float32) if x.dtype == jnp.float16 else x

    return {
        stream: {k: widen(v) for k, v in batch[stream].items() if k in STEP_INPUTS}
        for stream in STREAMS
        if stream in batch
    }


def _representations(
    model: TriModalNet, params: Any, inputs: Mapping[str, jax.Array], modality: str, rng: jax.Array
) -> dict[str, jax.Array]:
    mask = inputs.get("text_mask") if modality == "text" else None
    reps = model.apply({"params": params}, inputs[modality], modality, mask, rngs={"dropout": rng})
    return cast(dict[str, jax.Array], reps)


def negatives(loss_cfg: Any) -> tuple[losses.Gather, Ring | None]:
    """(gather, ring): how the per-device loss sees the whole global batch, inside shard_map over
    'data': gather(x) -> (x of every device [N, ...], offset of the local rows), and the ring that
    passes the ranking's candidates around the devices where loss.chunked asks (else None)."""
    device = lax.axis_index(AXIS)

    def gather(x):
        return lax.all_gather(x, AXIS, tiled=True), device * x.shape[0]

    return gather, Ring(AXIS, lax.axis_size(AXIS)) if losses.is_chunked(loss_cfg) else None


def make_train_step(
    model: TriModalNet,
    optimizer: optax.GradientTransformation,
    loss_cfg: Any,
    mesh: Mesh,
    teacher: Any = None,
    accumulate: int = 1,
) -> TrainStep:
    """step(state, batch, teacher_params=None) -> (state, metrics), jitted once, state donated.

    batch: {"image_sound": {...}, "image_text": {...}} (either stream may be absent) sharded over 'data'
    (see shard_batch); the global batch of each stream must divide evenly over the mesh. A stream without
    "teacher_probs" gets the frozen teacher's softmax on its images, which needs `teacher` and
    `teacher_params` (replicated; not trained). A step whose loss or gradient norm is not finite leaves
    params and opt_state unchanged and increments nonfinite_count; `step` always advances.
    metrics: the objective's terms and "loss", plus "grad_norm" and "finite" (1.0 or 0.0).

    mesh: 1-D 'data' (replicated state) or 2-D ('data', 'fsdp') (state sharded as state_shardings
    lays it out; the step gathers the parameters and updates each shard in place).
    accumulate: k > 1 splits each device's rows into k micro-batches run one after another (a scan:
    one micro-batch's activations live at a time) and applies the mean of their gradients once; the
    ranking negatives are then the micro-batch's (global batch / k), not the whole global batch's.
    """
    needs_teacher_probs = losses.needs_teacher_probs(loss_cfg)

    def per_device(params, batch, teacher_params, rng):
        device = lax.axis_index(AXIS)
        rng = jax.random.fold_in(rng, device)
        teacher_probs = {}
        for name, inputs in batch.items():
            if "teacher_probs" in inputs:
                teacher_probs[name] = inputs["teacher_probs"]
            elif needs_teacher_probs:
                if teacher is None or teacher_params is None:
                    raise ValueError(
                        f"stream {name!r} has no teacher_probs: pass a teacher to make_train_step "
                        "and teacher_params to the step"
                    )
                logits = teacher.apply({"params": teacher_params}, inputs["image"])
                teacher_probs[name] = lax.stop_gradient(jax.nn.softmax(logits))

        gather, ring = negatives(loss_cfg)

        def loss_fn(params):
            reps = {}
            for i, (name, inputs) in enumerate(batch.items()):
                reps[name] = {
                    modality: _representations(
                        model, params, inputs, modality, jax.random.fold_in(rng, 2 * i + j)
                    )
                    for j, modality in enumerate(STREAMS[name])
                }
            captions = {
                name: mean_words(inputs["text"], inputs["text_mask"])
                for name, inputs in batch.items()
                if "text" in inputs
            }
            loss_params = params.get(losses.LOSS_PARAMS)
            return objective(reps, teacher_probs, loss_cfg, gather, captions, loss_params, ring)

        # Per-device copies of the parameters: each device differentiates its own share of the loss
        # (cross-device terms flow back through all_gather), and pmean then averages.
        local_params = jax.tree.map(lambda x: lax.pcast(x, AXIS, to="varying"), params)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(local_params)
        return grads, metrics

    def averaged(params, batch, teacher_params, rng):
        if accumulate == 1:
            local = per_device(params, batch, teacher_params, rng)
        else:
            local = mean_over_micro_batches(
                per_device, accumulate, params, batch, teacher_params, rng
            )
        return lax.pmean(local, AXIS)

    sharded = shard_map(
        averaged,
        mesh=data_mesh(mesh),
        in_specs=(P(), P(AXIS), P(), P()),
        out_specs=(P(), P()),
    )

    fsdp = FSDP_AXIS in mesh.axis_names

    def step(state: TrainState, batch: Any, teacher_params: Any = None):
        rng = jax.random.fold_in(state.rng, state.step)
        grads, metrics = sharded(state.params, _step_inputs(batch), teacher_params, rng)
        if not fsdp:
            return apply_gradients(state, grads, metrics, optimizer)
        layout = state_shardings(state, mesh)
        # The parameters enter whole (gathered over 'fsdp'); the gradients leave as the parameters'
        # shards, so the optimizer updates each shard on the devices that hold it.
        grads = lax.with_sharding_constraint(grads, layout.params)
        new_state, metrics = apply_gradients(state, grads, metrics, optimizer)
        return lax.with_sharding_constraint((new_state, metrics), (layout, replicated(mesh)))

    # A replicated state compiles as the data-parallel step always has: FSDP's sharding annotations
    # change XLA's fusions, and with them the float rounding (and so the trained numbers) of the
    # default configs.
    return jax.jit(step, donate_argnums=0, out_shardings=None if fsdp else replicated(mesh))


def _micro_batches(batch: Any, k: int) -> Any:
    """Each leaf [b, ...] -> [k, b // k, ...]: k micro-batches of consecutive rows."""

    def split(x):
        if x.shape[0] % k:
            raise ValueError(
                f"a device's {x.shape[0]} rows per stream do not split into accumulate={k} "
                "micro-batches: make the batch size a multiple of the devices times accumulate"
            )
        return x.reshape(k, x.shape[0] // k, *x.shape[1:])

    return jax.tree.map(split, batch)


def mean_over_micro_batches(
    grad_fn: Callable[..., Any],
    k: int,
    params: Any,
    batch: Any,
    teacher_params: Any,
    rng: jax.Array,
) -> Any:
    """grad_fn(params, micro_batch, teacher_params, fold_in(rng, j)) averaged over the k micro-batches
    j of `batch` (leaves [b, ...], b divisible by k), one after another in a scan."""
    micro = _micro_batches(batch, k)

    def run(j):
        part = jax.tree.map(lambda x: x[j], micro)
        return grad_fn(params, part, teacher_params, jax.random.fold_in(rng, j))

    def add(total, j):
        return jax.tree.map(jnp.add, total, run(j)), None

    # The first micro-batch starts the sum: its result already has the types (and per-device
    # variance) the scan's carry must keep.
    total, _ = lax.scan(add, run(0), jnp.arange(1, k))
    return jax.tree.map(lambda x: x / k, total)


def apply_gradients(
    state: TrainState,
    grads: Any,
    metrics: dict[str, jax.Array],
    optimizer: optax.GradientTransformation,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """The optimizer's update of `state`, kept only where metrics["loss"] and the gradient norm are
    finite (else params and opt_state stay and nonfinite_count grows); `step` always advances.
    Returns (state, metrics plus "grad_norm" and "finite" (1.0 or 0.0))."""
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    def keep_if_finite(new, old):
        return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

    new_state = dataclasses.replace(
        state,
        step=state.step + 1,
        params=keep_if_finite(params, state.params),
        opt_state=keep_if_finite(opt_state, state.opt_state),
        nonfinite_count=state.nonfinite_count + jnp.logical_not(finite).astype(jnp.int32),
    )
    return new_state, {**metrics, "grad_norm": grad_norm, "finite": finite.astype(jnp.float32)}


def make_embed_fn(model: TriModalNet, mesh: Mesh) -> Callable[..., dict[str, jax.Array]]:
    """embed(params, x, modality, mask=None) -> {"tower", "fc6", "fc7", "logits"[, "words"]}, each
    [B, dim] sharded over 'data' of data_mesh(mesh). x (and mask) [B, ...] with B divisible by the mesh
    size; pad the last batch. params: replicated or sharded over 'fsdp' (gathered here)."""

    def embed(params, x, modality, mask=None):
        def local(params, x, mask):
            return model.apply({"params": params}, x, modality, mask)

        return shard_map(
            local, mesh=data_mesh(mesh), in_specs=(P(), P(AXIS), P(AXIS)), out_specs=P(AXIS)
        )(params, x, mask)

    return jax.jit(embed, static_argnames="modality")


def make_classifier_step(
    classifier: Any, optimizer: optax.GradientTransformation, mesh: Mesh
) -> Callable[[TrainState, Any], tuple[TrainState, dict[str, jax.Array]]]:
    """step(state, batch) -> (state, metrics) for a classifier of images (the teacher), jitted once,
    state donated.

    batch: {"image": uint8 [B, H, W, 3], "label": int32 [B]} sharded over 'data' (shard_batch); rows
    with label < 0 carry no class and do not count. The loss is the mean softmax cross-entropy over the
    global batch's labelled rows. metrics: "loss", "top1" (of the labelled rows), "grad_norm", "finite".
    Non-finite steps are handled as in make_train_step.
    """

    def loss_fn(params, batch, rng):
        logits = classifier.apply(
            {"params": params}, batch["image"], train=True, rngs={"dropout": rng}
        )
        labelled = batch["label"] >= 0
        labels = jnp.where(labelled, batch["label"], 0)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        count = jnp.maximum(jnp.sum(labelled), 1)
        loss = jnp.sum(jnp.where(labelled, losses, 0.0)) / count
        hits = jnp.sum(labelled & (jnp.argmax(logits, -1) == labels)) / count
        return loss, {"loss": loss, "top1": hits}

    def step(state: TrainState, batch: Any):
        rng = jax.random.fold_in(state.rng, state.step)
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, batch, rng)
        return apply_gradients(state, grads, metrics, optimizer)

    return jax.jit(step, donate_argnums=0, out_shardings=replicated(mesh))
