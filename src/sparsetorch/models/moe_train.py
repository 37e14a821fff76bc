"""`train_moe_gpt`: a `MoEGPT` trained on Shakespeare bytes by `training.lm.fit_lm`, with routing statistics.

The pretrained `gpt-tiny` recipe, shorter: AdamW (weight decay on matrices and stacked expert weights),
linear warmup then cosine, grad clip, seeded batches, dropout and init. Per step, an `on_step` callback
feeds the step's aux values to a `RoutingMonitor` (balance loss, load entropy, max/mean load, router
entropy, dropped fraction, dead experts); held-out perplexity comes from `training.lm.evaluate_lm`,
whose `on_output` collects the eval routing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from sparsetorch.data.shakespeare import shakespeare_windows
from sparsetorch.models.moe_gpt import MoEGPT, MoEGPTConfig
from sparsetorch.routing.monitor import RoutingMonitor
from sparsetorch.training.lm import evaluate_lm, fit_lm
from sparsetorch.training.loop import Step

__all__ = ["MoETrainResult", "train_moe_gpt"]


@dataclass
class MoETrainResult:
    """What `train_moe_gpt` measured.

    Attributes:
        model: the trained model (eval mode).
        val_loss: mean held-out next-byte cross-entropy (nats), dropless unless the eval cf drops.
        val_perplexity: exp(val_loss).
        train_seconds: wall time of the training steps (forward, backward, optimizer), not eval.
        step_seconds: wall time of each step.
        step_cpu_seconds: CPU time of this process (all its threads) in each step; unlike wall
            time it hardly grows when other processes share the cores.
        history: one dict per step: loss (task), aux_loss, and the routing statistics averaged over
            MoE layers (balance_loss, load_entropy, max_load_ratio, router_entropy, dropped_fraction),
            dead_experts summed over layers, sinkhorn_calls (ssr) and lr.
        routing: per-layer `RoutingMonitor.summary()` over all training steps.
        eval_routing: per-layer summary over the held-out windows (eval mode).
    """

    model: MoEGPT
    val_loss: float
    val_perplexity: float
    train_seconds: float
    step_seconds: list[float]
    step_cpu_seconds: list[float]
    history: list[dict[str, float]]
    routing: dict[str, dict[str, float]]
    eval_routing: dict[str, dict[str, float]]

    def window(self, key: str, *, last: float = 0.2) -> float:
        """Mean of history[key] over the last `last` fraction of steps (at least one step)."""
        n = max(1, round(len(self.history) * last))
        values = [row[key] for row in self.history[-n:] if key in row]
        return statistics.fmean(values) if values else float("nan")


def _step_stats(monitor: RoutingMonitor, aux: dict[str, dict[str, Tensor]]) -> dict[str, float]:
    """Routing statistics of one step, averaged over layers (dead experts and Sinkhorn calls summed)."""
    monitor.reset()
    _update(monitor, aux)
    summary = monitor.summary()
    out: dict[str, float] = {}
    for key in ("load_entropy", "max_load_ratio", "router_entropy", "dropped_fraction"):
        vals = [row[key] for row in summary.values() if key in row]
        if vals:
            out[key] = statistics.fmean(vals)
    out["dead_experts"] = sum(row["dead_experts"] for row in summary.values())
    balance = [float(v["balance_loss"].detach()) for v in aux.values() if "balance_loss" in v]
    if balance:
        out["balance_loss"] = statistics.fmean(balance)
    calls = [float(v["sinkhorn_applied"]) for v in aux.values() if "sinkhorn_applied" in v]
    if calls:
        out["sinkhorn_calls"] = sum(calls)
    return out


def train_moe_gpt(
    *,
    config: MoEGPTConfig | None = None,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 1e-3,
    min_lr: float = 1e-4,
    warmup_steps: int = 30,
    weight_decay: float = 0.1,
    grad_clip: float = 1.0,
    eval_windows: int = 256,
    seed: int = 0,
    log_every: int | None = None,
    log: Callable[[str], None] = print,
    text: tuple[str, str] | None = None,
) -> MoETrainResult:
    """Train a `MoEGPT` on Shakespeare bytes and measure held-out perplexity and routing.

    Args:
        config: the model (default `MoEGPTConfig()`: gpt-tiny with 8 experts, top-2, every layer).
        steps: optimizer steps of `batch_size` windows of `block_size` tokens.
        lr, min_lr, warmup_steps: linear warmup to `lr`, then cosine to `min_lr`.
        weight_decay: AdamW decay on matrices (and stacked expert weights), none on vectors.
        grad_clip: max global gradient norm.
        eval_windows: evenly spaced held-out windows for perplexity.
        seed: batch sampling and dropout (the model's init is `config.seed`).
        log_every: log a line every this many steps (and the last); None logs nothing.
        log: where log lines go.
        text: (train, val) strings instead of `load_shakespeare("train")` / `("val")`.

    Raises:
        DataNotFoundError: the Shakespeare corpus is not installed (and `text` is not given).
    """
    config = config or MoEGPTConfig()
    if min(steps, batch_size, eval_windows) < 1 or not (lr > 0 and min_lr >= 0 and warmup_steps >= 0):
        raise ValueError("steps, batch_size, eval_windows and lr must be positive, min_lr and warmup >= 0")
    if log_every is not None and log_every < 1:
        raise ValueError(f"log_every must be a positive integer or None, got {log_every}")
    train, val = shakespeare_windows(config.gpt.block_size, text=text)
    model = MoEGPT(config)
    step_monitor, total = RoutingMonitor(config.num_experts), RoutingMonitor(config.num_experts)
    history: list[dict[str, float]] = []
    step_seconds: list[float] = []
    step_cpu_seconds: list[float] = []

    def record(step: Step) -> None:
        step_seconds.append(step.seconds)
        step_cpu_seconds.append(step.cpu_seconds)
        aux = step.output.aux
        row = {"step": float(step.index), "lr": step.optimizer.param_groups[0]["lr"]}
        row.update({"loss": step.parts["task"], "aux_loss": step.parts["aux_loss"]})
        row.update(_step_stats(step_monitor, aux))
        _update(total, aux)
        history.append(row)
        if log_every is not None and (step.index % log_every == 0 or step.index == steps - 1):
            log(_format_row(row, steps))

    fit_lm(
        model, train, steps=steps, batch_size=batch_size, lr=lr, min_lr=min_lr, warmup_steps=warmup_steps,
        weight_decay=weight_decay, grad_clip=grad_clip, seed=seed, on_step=record,
    )  # fmt: skip
    model.eval()  # the result's model is returned ready for inference
    eval_monitor = RoutingMonitor(config.num_experts)
    watch = lambda out: _update(eval_monitor, out.aux)  # noqa: E731  (the eval routing, per batch)
    held_out = evaluate_lm(model, val, num_windows=eval_windows, batch_size=batch_size, on_output=watch)
    val_loss = held_out["loss"]
    return MoETrainResult(
        model=model,
        val_loss=val_loss,
        val_perplexity=math.exp(val_loss),
        train_seconds=sum(step_seconds),
        step_seconds=step_seconds,
        step_cpu_seconds=step_cpu_seconds,
        history=history,
        routing=total.summary(),
        eval_routing=eval_monitor.summary(),
    )


def _update(monitor: RoutingMonitor, aux: dict[str, dict[str, Tensor]]) -> None:
    """Feed every layer's routing `aux` of one forward pass into `monitor`."""
    for layer, values in aux.items():
        monitor.update(values, layer=layer)


def _format_row(row: dict[str, float], steps: int) -> str:
    keys = ("loss", "aux_loss", "balance_loss", "max_load_ratio", "router_entropy", "dropped_fraction")
    stats = " ".join(f"{k}={row[k]:.4g}" for k in keys if k in row)
    extra = f" dead={row['dead_experts']:.0f}" + (
        f" sinkhorn={row['sinkhorn_calls']:.0f}" if "sinkhorn_calls" in row else ""
    )
    return f"step {int(row['step']) + 1}/{steps} {stats}{extra}"
