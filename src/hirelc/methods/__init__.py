"""Bitwidth search: methods sharing one evaluation ledger (cache, budget, journal).

>>> from hirelc.methods import search, list_methods
>>> "releq" in list_methods()
True
"""

from hirelc.methods.api import list_methods, run_search, search
from hirelc.methods.ledger import BudgetExhausted, Evaluation, EvaluationLedger
from hirelc.methods.problem import DEFAULT_BITS, SearchProblem
from hirelc.methods.releq.reward import RewardParams
from hirelc.methods.result import EpisodeRecord, SearchResult

__all__ = [
    "search",
    "run_search",
    "list_methods",
    "EvaluationLedger",
    "Evaluation",
    "BudgetExhausted",
    "SearchProblem",
    "DEFAULT_BITS",
    "RewardParams",
    "SearchResult",
    "EpisodeRecord",
]
