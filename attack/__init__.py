"""Attack core: token features from logits and the attack registry (metrics: vidsme.metrics).

Public API for attack authors:

    from vidsme.attack import AttackInputs, Direction, register_attack

    @register_attack("my_attack", direction=Direction.LOWER,
                     needs=("natural.entropy",), citation="Me et al. 2026")
    def my_attack(inputs: AttackInputs):
        ...  # return one score per sample

Modules: features (per-position features, one chunked pass over logits),
vid_sme_orders (per-video q, r), aggregate (masked K% reductions), inputs (what an
attack sees), registry (decorator, lookup, plugins, the listing), isolated (the sandboxed
child of a code submission), attacks/ (one file per attack family).
"""
from vidsme.direction import Direction
from vidsme.attack.inputs import AttackInputs, build_attack_inputs
from vidsme.metrics import Evaluation, evaluate_scores
from vidsme.attack.registry import AttackSpec, get_attack, list_attacks, load_attack_source, register_attack

__all__ = [
    "AttackInputs",
    "AttackSpec",
    "Direction",
    "Evaluation",
    "build_attack_inputs",
    "evaluate_scores",
    "get_attack",
    "list_attacks",
    "load_attack_source",
    "register_attack",
]
