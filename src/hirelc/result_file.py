"""result.json: its keys, the old spellings they replace, and the one reader.

A search's result.json holds what identifies the run unprefixed (model, data, method, seed,
split_seed, split_sizes, layers, layer_params, bit_choices, plan, bits, target, space, and
`search`, the method's log) and every figure under a prefix that says where it comes from
(CleanRL-style namespaced keys, one name per concept):

    val/       validation data, the only split the search sees (at the search fidelity)
    test/      held-out test data, after the final fine-tune
    size/      measured on the written files (bytes), and the one compression figure
    plan/      statistics of the chosen plan (exact counts, no model of hardware)
    modelled/  cost-model figures (a bit-serial accelerator; a kernel-only storage model)
    search/    how the search went: evaluations by origin, stop reason, notes
    run/       where and how the job ran: wall time, threads, executor

Files written before these names (no "result_version") are read through `upgrade`, so the
report, `eval --plan`, `resume` and the benchmark scripts keep working on old run
directories. A `Result` also answers the old names, with a DeprecationWarning, so code that
reads `result["final_test_accuracy"]` keeps working for now.

>>> old = {"method": "tpe", "final_test_accuracy": 0.98, "size": {"packed_data_bytes": 1000,
...        "compression_vs_fp32_tensors": 16.4}, "real_evaluations": 4}
>>> new = upgrade(old)
>>> new["test/accuracy"], new["size/packed_data_bytes"], new["search/evaluations"], "size" in new
(0.98, 1000, 4, False)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULT_VERSION = 2

COMPRESSION_DEFINITION = ("fp32 tensor bytes / packed tensor bytes (the packed file's data section, measured; "
                          "what a size target bounds)")
FILE_COMPRESSION_DEFINITION = "fp32 state_dict file bytes / packed .hirelc file bytes, header included (both measured)"

# old flat key -> new key (result.json version 1, written until this change)
RENAMED: dict[str, str] = {
    "fp32_val_accuracy": "val/fp32_accuracy",
    "search_val_accuracy": "val/accuracy",
    "baseline_test_accuracy": "test/fp32_accuracy",
    "final_test_accuracy": "test/accuracy",
    "accuracy_loss_points": "test/accuracy_drop_points",
    "final_status": "test/status",
    "packed_file": "size/packed_file",
    "packed_bytes": "size/packed_file_bytes",
    "fp32_state_dict_bytes": "size/fp32_state_dict_bytes",
    "compression_ratio": "size/file_compression",
    "target_met_by_file": "size/target_met",
    "avg_bits": "plan/avg_bits",
    "param_weighted_avg_bits": "plan/param_weighted_avg_bits",
    "state_of_quantization": "plan/state_of_quantization",
    "modelled_speedup_vs_8bit": "modelled/speedup_vs_8bit",
    "modelled_energy_reduction_vs_8bit": "modelled/energy_reduction_vs_8bit",
    "kernel_storage_compression_cost_model": "modelled/kernel_storage_compression",
    "real_evaluations": "search/evaluations",
    "replayed_evaluations": "search/replayed",
    "evaluations_to_best": "search/evaluations_to_best",
    "target_met": "search/target_met",
    "notes": "search/notes",
    "converged_at_episode": "search/converged_at_episode",
    "stop_reason": "search/stop_reason",
    "wall_seconds": "run/wall_seconds",
    "torch_threads": "run/torch_threads",
    "omp_wait_policy": "run/omp_wait_policy",
    "omp_wait_policy_set_by": "run/omp_wait_policy_set_by",
    "executor": "run/executor",
}
# version 1's nested "size" entries; its compression_vs_fp32_tensors (fp32 tensor bytes / packed
# data bytes) is recomputed from the two byte counts as size/compression; version 1's flat
# compression_ratio (file / file) is size/file_compression.
NESTED_SIZE = ("packed_data_bytes", "packed_file_bytes", "storage_model_bytes", "fp32_tensor_bytes",
               "storage_model_matches_file")
# version 1's counters that are not carried over: process-local, so wrong with parallel workers
# (the ledger's counts, search/new_evaluations etc., replace them)
DROPPED = ("evaluator_during_search", "finetune_steps")


class Result(dict):
    """result.json's content; an old key name still answers, with a DeprecationWarning.

    >>> r = Result({"test/accuracy": 0.98})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     r["final_test_accuracy"], str(caught[0].message)
    (0.98, "result key 'final_test_accuracy' is now 'test/accuracy'")
    """

    def __missing__(self, key: str) -> Any:
        new = RENAMED.get(key)
        if new is None or new not in self:
            raise KeyError(key)
        warnings.warn(f"result key {key!r} is now {new!r}", DeprecationWarning, stacklevel=2)
        return self[new]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def upgrade(result: Mapping[str, Any]) -> Result:
    """result.json content of any version -> the current keys (unknown keys kept as they are)."""
    if result.get("result_version") == RESULT_VERSION:
        return Result(result)
    out = Result()
    for key, value in result.items():
        if key == "size" and isinstance(value, Mapping):
            out.update({f"size/{k}": value[k] for k in NESTED_SIZE if k in value})
        elif key not in DROPPED:
            out[RENAMED.get(key, key)] = value
    if out.get("size/packed_data_bytes") and "size/fp32_tensor_bytes" in out:
        out["size/compression"] = out["size/fp32_tensor_bytes"] / out["size/packed_data_bytes"]
        out["size/compression_definition"] = COMPRESSION_DEFINITION
    return out


def read_result(run_dir: str | Path) -> Result:
    """The result.json of a run directory, upgraded to the current keys (a run that has not
    finished, or a file that is not JSON, raises one clear error naming it).

    >>> read_result("/nonexistent/run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: run directory /nonexistent/run does not exist
    """
    from hirelc.rundir import RunDir

    return RunDir(run_dir).read_result()


def search_keys(found: Any, method: str, options: Mapping[str, Any], bits: Sequence[int],
                reference: float) -> dict[str, Any]:
    """val/ and search/ keys of result.json from a `SearchResult` `found`; the evaluation
    counts are the ledger's (so they include the evaluations of parallel workers)."""
    counts = found.evaluation_counts
    return {
        "val/fp32_accuracy": reference,
        "val/accuracy": found.best_accuracy,
        **{f"search/{k}": counts[k] for k in ("evaluations", "new_evaluations", "served_from_cache", "replayed",
                                               "repeats")},
        "search/evaluations_to_best": found.evaluations_to_best,
        "search/target_met": found.target_met,
        "search/stop_reason": found.stop_reason,
        "search/converged_at_episode": found.converged_at,
        "search/notes": found.notes(),
        "search": {"actions": action_labels(method, options, bits), **found.to_dict()},
    }


def action_labels(method: str, options: Mapping[str, Any], bits: Sequence[int]) -> list[str]:
    """What each action index means, for the action-probability figure (seed 000 Fig. 1a)."""
    if method == "releq" and options.get("action_space") == "restricted":
        return ["decrement", "keep", "increment"]  # hirelc.methods.releq.env: DECREMENT, KEEP, INCREMENT
    return [str(b) for b in bits]
