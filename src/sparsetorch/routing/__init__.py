"""Routes: which experts compute each token (sparse mixture-of-experts).

- `gates`: `Routing(indices, weights, aux)`, the gates and their registry `GATES`;
- `losses`: the aux values (balance loss, z-loss, entropy, load);
- `dispatch`: dropless (sort + grouped matmul) and Tutel-style capacity dispatch;
- `moe`: the `MoE` layer and its `Experts`;
- `monitor`: dead experts, entropy, routing fluctuation, load histogram;
- `parallel`: expert parallelism over `torch.distributed` (all_to_all), dropless or capacity;
- `oracle`: the best achievable routing per sample (exhaustive over expert sets), for oracle gaps;
- `roma`: router-only fine-tuning with routing-manifold regularization (RoMA).
"""

from __future__ import annotations

from sparsetorch._deprecation import moved
from sparsetorch.routing.dispatch import capacity, capacity_dispatch, dropless, slot_locations
from sparsetorch.routing.gates import (
    GATES,
    ExpertChoiceGate,
    Gate,
    HashGate,
    LinearGate,
    OracleGate,
    RandomGate,
    Routing,
    SinkhornGate,
    SwitchGate,
    TopKGate,
    expert_choice_gating,
    random_gating,
    sinkhorn,
    sinkhorn_gating,
    top_k_gating,
)
from sparsetorch.routing.graph_of_tokens import (  # registers "similarity-aware", "attention-aware"
    AttentionAwareGate,
    SimilarityAwareGate,
    sequence_moe,
)
from sparsetorch.routing.language_family import (  # registers "forced-expert"
    ForcedExpertGate,
    forced_expert_gating,
)
from sparsetorch.routing.losses import balance_loss, expert_load, routing_entropy, z_loss
from sparsetorch.routing.magnet import EntropyTriggeredSchedule, MagnetConfig, RouterPhase
from sparsetorch.routing.moe import Experts, MoE, name_gates
from sparsetorch.routing.monitor import (
    RoutingMonitor,
    capture_routing,
    dead_experts,
    load_entropy,
    load_histogram,
    routing_fluctuation,
)
from sparsetorch.routing.oracle import OracleResult, forced_last_token, oracle_routing
from sparsetorch.routing.parallel import ExpertParallelMoE
from sparsetorch.routing.roma import RomaConfig, finetune_routers, manifold_regularizer, successful_set
from sparsetorch.routing.ssr import SSRGate, ssr_gating, transport_plan_routing  # registers "ssr"

__all__ = [
    "GATES",
    "AttentionAwareGate",
    "EntropyTriggeredSchedule",
    "ExpertChoiceGate",
    "ExpertParallelMoE",
    "Experts",
    "ForcedExpertGate",
    "Gate",
    "HashGate",
    "LinearGate",
    "MagnetConfig",
    "MoE",
    "OracleGate",
    "OracleResult",
    "RandomGate",
    "RomaConfig",
    "RouterPhase",
    "Routing",
    "RoutingMonitor",
    "SSRGate",
    "SimilarityAwareGate",
    "SinkhornGate",
    "SwitchGate",
    "TopKGate",
    "balance_loss",
    "capacity",
    "capacity_dispatch",
    "capture_routing",
    "dead_experts",
    "dropless",
    "expert_choice_gating",
    "expert_load",
    "finetune_routers",
    "forced_expert_gating",
    "forced_last_token",
    "load_entropy",
    "load_histogram",
    "manifold_regularizer",
    "name_gates",
    "oracle_routing",
    "random_gating",
    "routing_entropy",
    "routing_fluctuation",
    "sequence_moe",
    "sinkhorn",
    "sinkhorn_gating",
    "slot_locations",
    "ssr_gating",
    "successful_set",
    "top_k_gating",
    "transport_plan_routing",
    "z_loss",
]

# The MoE tiny-GPT variants moved to the models layer; the old names resolve for one release.
__getattr__ = moved(
    __name__,
    {
        "FamilyMoEGPT": "sparsetorch.models.moe_variants.FamilyMoEGPT",
        "graph_moe_gpt": "sparsetorch.models.moe_variants.graph_moe_gpt",
    },
)
