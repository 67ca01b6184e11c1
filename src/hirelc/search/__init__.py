"""Bitwidth search: methods sharing one evaluation ledger (cache, budget, journal).

>>> from hirelc.search import search, list_methods
>>> "releq" in list_methods()
True
"""

from hirelc.search.api import list_methods, run_search, search
from hirelc.search.ledger import BudgetExhausted, Evaluation, EvaluationLedger
from hirelc.search.problem import DEFAULT_BITS, SearchProblem
from hirelc.search.releq.reward import RewardParams
from hirelc.search.result import EpisodeRecord, SearchResult

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
