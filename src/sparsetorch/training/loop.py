"""The one optimizer loop every trainer in sparsetorch runs: `train_steps`, its batches and callbacks.

`fit` (classification, `training.fit`) and `fit_lm` (language models, `training.lm`) are thin recipes
around it, and so are the search, routing, SDR and paper trainers. Each step:

    optimizer.zero_grad();  lr <- lr_at(i)
    for each micro-batch b of the step:  Loss(total, output, parts) = loss_fn(model, b);  total.backward()
    on_grads(model);  clip_grad_norm_(grad_clip);  optimizer.step()
    row = on_step(Step(...))                       (gradients still present: RigL-style methods read them)
    after `i + 1` steps, if i + 1 is in eval_at:   row = on_eval(i + 1, model)  (eval mode, no grad)

Callbacks are where sparse methods, routers, monitors and reproductions hook in; what they measure
comes back as return values (a mapping of floats, merged into the step's row), and aux losses come
back from `loss_fn` (or the model's output, see `training.lm.lm_loss`), never through globals.

- `loss_fn(model, batch) -> Loss`: the step's objective on one (micro-)batch; a `loss_fn` that declares
  a `step` parameter is called as `loss_fn(model, batch, step=i)`, `i` the 0-based index of the step
  being computed (schedules of aux weights, without counters of their own).
- `on_grads(model) -> None`: after the backward pass, before clipping and the optimizer step
  (gradient surgery: a projection, a balance term written into `.grad`).
- `on_step(step: Step) -> Mapping[str, float] | None`: after the optimizer step.
- `on_eval(steps_done: int, model) -> Mapping[str, float] | None`: at the step counts in `eval_at`
  (0 = before training), the model in eval mode under `torch.no_grad()`; its mode is restored after.

The loop never changes the model's train/eval mode outside `on_eval`: the caller sets it.

Gradient accumulation (`Microbatches`): the gradients of the step's micro-batches add up, so each
`loss_fn` call must return this micro-batch's share of the step's mean loss (e.g. the summed loss of
its examples divided by the examples of the whole step), not its own mean.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

__all__ = [
    "Loss",
    "Microbatches",
    "OnEval",
    "OnGrads",
    "OnStep",
    "Step",
    "TrainLog",
    "as_callbacks",
    "check_finite",
    "cuda_devices",
    "epoch_batches",
    "random_batches",
    "takes_step",
    "train_mode",
    "train_steps",
]


class Loss(NamedTuple):
    """What a `loss_fn` returns: the scalar to minimise, the model's output, and named parts to log."""

    total: Tensor
    output: Any = None
    parts: Mapping[str, Tensor | float] = {}


class Microbatches(list):
    """The micro-batches of one optimizer step (gradient accumulation); any other batch is one micro-batch.

    Scaling rule: the micro-batches' gradients are summed, so `loss_fn` must return this micro-batch's
    share of the step's mean loss (its examples' summed loss divided by the step's example count);
    then the step equals one batch of all its examples.
    """


@dataclass
class Step:
    """What `on_step` sees after an optimizer step.

    Attributes:
        index: 0-based index of the step just taken (`index + 1` steps are done).
        steps: total steps of the run.
        loss: the step's total loss (sum over its micro-batches).
        parts: the step's named loss parts (floats, summed over micro-batches).
        output: the model's output on the step's last micro-batch (its graph is still alive).
        batch: the step's batch (a `Microbatches` list when accumulating).
        model, optimizer: what is trained.
        seconds, cpu_seconds: wall and process CPU time of the step (forward, backward, optimizer).
    """

    index: int
    steps: int
    loss: float
    parts: dict[str, float]
    output: Any
    batch: Any
    model: nn.Module
    optimizer: torch.optim.Optimizer
    seconds: float
    cpu_seconds: float


@dataclass
class TrainLog:
    """What `train_steps` returns: one row per step (`step`, `loss`, parts, callback values) and one
    row per evaluation (`step` = steps done, the `on_eval` values)."""

    steps: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)


LossFn = Callable[[nn.Module, Any], Loss]
OnStep = Callable[[Step], Mapping[str, float] | None]
OnEval = Callable[[int, nn.Module], Mapping[str, float] | None]
OnGrads = Callable[[nn.Module], None]


def epoch_batches(
    n: int, batch_size: int, generator: torch.Generator, *, accumulate: int | None = None
) -> Iterator[Any]:
    """Index batches over `n` examples, epoch after epoch, each epoch a fresh seeded permutation.

    Every epoch's permutation is drawn when the epoch begins. With `accumulate`, yields `Microbatches`
    of up to `accumulate` consecutive index tensors of one epoch (the last group may be shorter).
    """
    while True:
        batches = torch.randperm(n, generator=generator).split(batch_size)
        if accumulate is None:
            yield from batches
        else:
            for first in range(0, len(batches), accumulate):
                yield Microbatches(batches[first : first + accumulate])


def random_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Index batches of `batch_size` rows drawn uniformly with replacement (the LM recipes' sampling)."""
    while True:
        yield torch.randint(n, (batch_size,), generator=generator)


def as_callbacks(value: Any, what: str) -> list[Callable]:
    """`value` (None, a callable or a sequence of callables) as a list of callables.

    Raises:
        TypeError: an item is not callable (`what` names the argument in the message).
    """
    items = [] if value is None else list(value) if isinstance(value, Sequence) else [value]
    for item in items:
        if not callable(item):
            raise TypeError(
                f"{what} must be a callable or a sequence of callables, got {type(item).__name__}"
            )
    return items


def _merge(row: dict[str, float], values: Mapping[str, float] | None, what: str) -> None:
    if values is None:
        return
    if not isinstance(values, Mapping):
        raise TypeError(f"{what} must return a mapping of floats or None, got {type(values).__name__}")
    row.update(values)


def _evaluate(model: nn.Module, done: int, on_eval: list[Callable], log: TrainLog) -> None:
    was_training = model.training
    model.eval()
    row: dict[str, float] = {"step": float(done)}
    try:
        with torch.no_grad():
            for callback in on_eval:
                _merge(row, callback(done, model), "on_eval")
    finally:  # an error in a callback must not leave the model in eval mode
        model.train(was_training)
    log.evals.append(row)


@contextmanager
def train_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Train mode inside the block; afterwards (even on an error) the mode the model was in before."""
    was_training = model.training
    model.train()
    try:
        yield model
    finally:
        model.train(was_training)


def takes_step(loss_fn: Callable) -> bool:
    """Whether `loss_fn` declares a `step` parameter (then the loop passes `step=` the step index)."""
    try:
        return "step" in inspect.signature(loss_fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: the plain (model, batch) form
        return False


def cuda_devices(model: nn.Module) -> list[int]:
    """Indices of the CUDA devices that hold `model`'s parameters or buffers (empty on the CPU)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sorted({t.device.index for t in tensors if t.device.type == "cuda"})


def _backward(
    model: nn.Module, batch: Any, loss_fn: LossFn, step: dict[str, int]
) -> tuple[float, dict[str, float], Any]:
    total, parts, output = 0.0, {}, None
    for micro in batch if isinstance(batch, Microbatches) else [batch]:
        result = loss_fn(model, micro, **step)
        if not isinstance(result, Loss):
            raise TypeError(f"loss_fn must return a Loss(total, output, parts), got {type(result).__name__}")
        result.total.backward()
        total += result.total.item()
        for key, value in result.parts.items():
            parts[key] = parts.get(key, 0.0) + float(value)
        output = result.output
    return total, parts, output


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Any],
    loss_fn: LossFn,
    *,
    steps: int,
    lr_at: Callable[[int], float] | None = None,
    grad_clip: float | None = None,
    on_grads: OnGrads | Sequence[OnGrads] | None = None,
    on_step: OnStep | Sequence[OnStep] | None = None,
    on_eval: OnEval | Sequence[OnEval] | None = None,
    eval_at: Iterable[int] = (),
    seed: int | None = None,
    log: TrainLog | None = None,
) -> TrainLog:
    """Run `steps` optimizer steps of `loss_fn` over `batches` (see the module docstring for the order).

    Args:
        batches: an iterable with at least `steps` step batches (`epoch_batches`, `random_batches`);
            a `Microbatches` batch accumulates gradients, and then `loss_fn` must return each
            micro-batch's share of the step's mean loss (see `Microbatches`).
        loss_fn: `(model, batch) -> Loss`, or `(model, batch, *, step) -> Loss` to see the step index.
        lr_at: the learning rate of every parameter group at step `i` (set before the step), or None.
        grad_clip: max global gradient norm, or None.
        eval_at: step counts (0 .. steps) after which `on_eval` runs.
        seed: when given, the global RNG (dropout) is seeded with it inside the call and restored after
            (the CPU generator and those of the CUDA devices holding the model).
        log: a `TrainLog` to append the rows to (returned), or None for a new one.

    Raises:
        ValueError, TypeError: a bad step count, evaluation point, callback or `loss_fn` return value.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    marks = set(eval_at)
    if any(not isinstance(m, int) or not 0 <= m <= steps for m in marks):
        raise ValueError(f"eval_at must hold step counts in [0, {steps}], got {sorted(marks)}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be positive or None, got {grad_clip!r}")
    grads_cbs, step_cbs = as_callbacks(on_grads, "on_grads"), as_callbacks(on_step, "on_step")
    eval_cbs = as_callbacks(on_eval, "on_eval")
    if marks and not eval_cbs:
        raise ValueError("eval_at needs an on_eval callback")
    log, source, with_step = TrainLog() if log is None else log, iter(batches), takes_step(loss_fn)
    # torch.manual_seed seeds the CUDA generators too: restore those of the model's devices as well
    forked = torch.random.fork_rng(devices=cuda_devices(model)) if seed is not None else nullcontext()
    with forked:
        if seed is not None:
            torch.manual_seed(seed)
        if 0 in marks:
            _evaluate(model, 0, eval_cbs, log)
        for index in range(steps):
            start, cpu_start = time.perf_counter(), time.process_time()
            optimizer.zero_grad(set_to_none=True)
            if lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(index)
            batch = next(source)
            loss, parts, output = _backward(model, batch, loss_fn, {"step": index} if with_step else {})
            for callback in grads_cbs:
                callback(model)
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            step = Step(index, steps, loss, parts, output, batch, model, optimizer, seconds, cpu)
            row = {"step": float(index), "loss": loss, **parts}
            for callback in step_cbs:
                _merge(row, callback(step), "on_step")
            log.steps.append(row)
            if index + 1 in marks:
                _evaluate(model, index + 1, eval_cbs, log)
        optimizer.zero_grad(set_to_none=True)
    return log


def check_finite(step: Step) -> None:
    """An `on_step` callback that stops a diverged run: RuntimeError on a non-finite loss."""
    if not math.isfinite(step.loss):
        raise RuntimeError(f"training diverged at step {step.index + 1} (loss {step.loss})")
