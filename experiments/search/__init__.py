"""Search: spaces and search policies, the plan and its cost model, populations, the cell search
(Optuna sampler, pruners, racing finalists, transfer), the selection rule, and ``Study``, which runs
them into the store. Imports ``models`` and ``store``."""

from .._faces import lazy

PUBLIC = {
    "Study": "study", "load_space": "space", "Space": "space", "SearchPolicy": "space", "policy_from": "space",
    "choose": "selection", "race_survivors": "race", "warm_start": "transfer",
}
__all__ = sorted(PUBLIC)
__getattr__, __dir__ = lazy(__name__, PUBLIC)
