"""Search methods sharing one problem (space, target, repair, objective) and one evaluation
ledger (cache, budget, journal).

>>> from hirelc.methods import search, list_methods
>>> "releq" in list_methods()
True
"""

from hirelc.methods.api import list_methods, method_config, run_search, search
from hirelc.methods.ledger import BudgetExhausted, Evaluation, EvaluationLedger
from hirelc.methods.problem import DEFAULT_BITS, SearchProblem
from hirelc.methods.releq.reward import RewardParams
from hirelc.methods.repair import InfeasibleTarget
from hirelc.methods.result import EpisodeRecord, SearchResult
from hirelc.methods.sizing import SizeModel
from hirelc.methods.space import SearchSpace, SpaceConfig
from hirelc.methods.target import Target

__all__ = [
    "search",
    "run_search",
    "list_methods",
    "method_config",
    "SearchSpace",
    "SpaceConfig",
    "Target",
    "SizeModel",
    "InfeasibleTarget",
    "EvaluationLedger",
    "Evaluation",
    "BudgetExhausted",
    "SearchProblem",
    "DEFAULT_BITS",
    "RewardParams",
    "SearchResult",
    "EpisodeRecord",
]
