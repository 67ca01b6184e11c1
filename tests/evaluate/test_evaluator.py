import json
import math
import re

import pytest
import torch
from torch import nn

from hirelc.evaluate import EvalResult, Evaluator, Fidelity, as_evaluate_fn
from hirelc.evaluate.fingerprint import model_fingerprint
from hirelc.plan import LayerConfig, Plan

from .conftest import uniform_plan


class CountingCompress:
    """Wraps a compress function and counts calls: proof that a result was not recomputed."""

    def __init__(self, compress):
        self.compress = compress
        self.calls = 0
        self.__module__, self.__qualname__ = __name__, "CountingCompress"

    def __call__(self, model, plan):
        self.calls += 1
        return self.compress(model, plan)


class _NaNWhenTraining(nn.Module):
    """Outputs NaN in train mode only: fine-tuning diverges, the plain measurement does not."""

    def forward(self, x):
        return x * float("nan") if self.training else x


def poison_plan(compress, poisoned: Plan, wrapper=_NaNWhenTraining):
    """A compress function that breaks exactly one plan (by content hash)."""

    def poisoning_compress(model, plan):
        out = compress(model, plan)
        if plan.content_hash() == poisoned.content_hash():
            out = nn.Sequential(out, wrapper())
        return out

    return poisoning_compress


# -- metrics --------------------------------------------------------------------------------


def test_8bit_keeps_fp32_accuracy_and_2bit_moves_logits(model, digits):
    ev = Evaluator(model, digits)
    fp32 = ev.reference("val")
    assert fp32.accuracy > 0.85 and fp32.logit_mse == 0.0 and fp32.n_examples == 360
    r8 = ev.evaluate(uniform_plan(8))
    assert r8.status == "ok" and not r8.cached
    assert abs(r8.accuracy - fp32.accuracy) <= 0.02
    assert r8.logit_mse < 0.01
    r2 = ev.evaluate(uniform_plan(2))
    assert r2.logit_mse > 10 * r8.logit_mse  # coarser weights move the logits much more
    assert (r8.split, r8.fidelity, r8.plan_hash) == ("val", Fidelity.none(), uniform_plan(8).content_hash())
    assert ev.fp32_accuracy("val") == fp32.accuracy


def test_fidelities_give_different_results_and_count_steps(model, digits):
    ev = Evaluator(model, digits, batch_size=64)
    plan = uniform_plan(2)
    none = ev.evaluate(plan, Fidelity.none())
    short = ev.evaluate(plan, Fidelity.short(15))
    final = ev.evaluate(plan, Fidelity.final(1))
    assert (none.finetune_steps, short.finetune_steps) == (0, 15)
    assert final.finetune_steps == 1078 // 64  # one epoch, last partial batch dropped
    assert ev.finetune_steps == 15 + 1078 // 64
    assert len({none.loss, short.loss, final.loss}) == 3
    assert short.loss < none.loss  # fine-tuning through the STE recovers some of the loss
    assert ev.real_evaluations == 3


def test_same_seed_same_result_other_seed_differs(model, digits):
    plan, fid = uniform_plan(3), Fidelity.short(10)
    a = Evaluator(model, digits, seed=1).evaluate(plan, fid)
    b = Evaluator(model, digits, seed=1).evaluate(plan, fid)
    c = Evaluator(model, digits, seed=2).evaluate(plan, fid)
    assert (a.accuracy, a.loss, a.logit_mse) == (b.accuracy, b.loss, b.logit_mse)
    assert a.loss != c.loss


def test_callers_rng_and_fp32_model_are_untouched(model, digits):
    before = model_fingerprint(model)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Evaluator(model, digits).evaluate(uniform_plan(4), Fidelity.short(5))
    assert torch.equal(torch.rand(3), expected)
    assert model_fingerprint(model) == before


def test_reference_logits_are_computed_once(model, digits):
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(1) if m is model else None)
    ev = Evaluator(model, digits, batch_size=512)
    ev.evaluate(uniform_plan(8))
    ev.evaluate(uniform_plan(4))
    ev.reference("val")
    assert len(calls) == 1  # one batch of 360 val images through the fp32 model, ever


def test_measure_any_model_and_output_shape_check(model, digits):
    ev = Evaluator(model, digits)
    assert ev.measure(model, "test").logit_mse == 0.0
    with pytest.raises(ValueError, match="must keep the output shape"):
        ev.measure(nn.Sequential(model, nn.Linear(10, 3)), "val")
    with pytest.raises(ValueError, match="unknown split"):
        ev.evaluate(uniform_plan(8), split="validation")


# -- caching --------------------------------------------------------------------------------


def test_second_identical_call_is_a_memory_cache_hit(model, digits, compress):
    counting = CountingCompress(compress)
    ev = Evaluator(model, digits, compress=counting)
    plan, fid = uniform_plan(4), Fidelity.short(5)
    first = ev.evaluate(plan, fid)
    second = ev.evaluate(plan, fid)
    assert not first.cached and second.cached
    assert (second.accuracy, second.loss, second.seconds) == (first.accuracy, first.loss, first.seconds)
    assert counting.calls == 1
    assert ev.counters() == {"real_evaluations": 1, "finetune_steps": 5, "cache_hits": 1, "disk_hits": 0}
    ev.evaluate(plan, fid, split="test")  # another split is another key
    ev.evaluate(plan, Fidelity.short(6))  # another fidelity too
    assert counting.calls == 3 and ev.cache_hits == 1


def test_disk_cache_is_shared_across_evaluators(model, digits, compress, tmp_path):
    plan, fid = uniform_plan(3), Fidelity.short(5)
    first = Evaluator(model, digits, compress=CountingCompress(compress), cache_dir=tmp_path)
    r1 = first.evaluate(plan, fid)

    counting = CountingCompress(compress)
    second = Evaluator(model, digits, compress=counting, cache_dir=tmp_path)  # "next CLI run"
    r2 = second.evaluate(plan, fid)
    assert r2.cached and counting.calls == 0
    assert second.counters() == {"real_evaluations": 0, "finetune_steps": 0, "cache_hits": 1, "disk_hits": 1}
    assert r2 == EvalResult(**{**r1.__dict__, "cached": True})
    files = list(tmp_path.glob("evaluations/*/*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["plan"] == plan.to_dict()


def test_disk_cache_not_shared_when_weights_or_settings_differ(model, digits, tmp_path):
    plan = uniform_plan(3)
    Evaluator(model, digits, cache_dir=tmp_path).evaluate(plan)
    other_lr = Evaluator(model, digits, cache_dir=tmp_path, finetune_lr=5e-4)
    assert not other_lr.evaluate(plan).cached
    with torch.no_grad():
        model.fc2.bias.add_(0.1)
    changed = Evaluator(model, digits, cache_dir=tmp_path)
    assert not changed.evaluate(plan).cached
    assert len(list(tmp_path.glob("evaluations/*"))) == 3


def test_unreadable_disk_entry_is_recomputed_with_warning(model, digits, tmp_path):
    plan = uniform_plan(5)
    ev = Evaluator(model, digits, cache_dir=tmp_path)
    ev.evaluate(plan)
    (entry,) = tmp_path.glob("evaluations/*/*.json")
    entry.write_text('{"key": "tru')
    fresh = Evaluator(model, digits, cache_dir=tmp_path)
    with pytest.warns(UserWarning, match="evaluation cache entry .*json is invalid .*recomputing it"):
        r = fresh.evaluate(plan)
    assert not r.cached and fresh.real_evaluations == 1
    assert json.loads(entry.read_text())["result"]["accuracy"] == r.accuracy  # rewritten


def _poison(field, value):
    def edit(entry):
        entry["result"][field] = value
    return edit


@pytest.mark.parametrize("edit, why", [
    (_poison("accuracy", 1.5), "outside"),
    (_poison("accuracy", float("nan")), "accuracy is nan"),          # json writes NaN, reads it back
    (_poison("accuracy", 0.123456789), "whole number of correct"),   # not k / n for any k
    (_poison("loss", -1.0), "loss is -1.0"),
    (_poison("logit_mse", None), "logit_mse is None"),               # only a diverged result may lack it
    (_poison("n_examples", 0), "n_examples is 0"),
    (_poison("plan_hash", "0" * 16), "plan_hash"),
    (lambda e: e.__setitem__("key", "other"), "key is 'other'"),
    (lambda e: e.__setitem__("result", [1, 2]), "no 'result'"),
])
@pytest.mark.parametrize("resealed", [False, True])
def test_poisoned_disk_entry_is_recomputed_with_a_warning_naming_the_file(model, digits, tmp_path, edit, why,
                                                                          resealed):
    """resealed=False: the recorded content hash catches the edit; True: the hash is removed
    (an entry from before hashes), and the range checks must catch it."""
    plan = uniform_plan(5)
    want = Evaluator(model, digits, cache_dir=tmp_path).evaluate(plan)
    (path,) = tmp_path.glob("evaluations/*/*.json")
    entry = json.loads(path.read_text())
    edit(entry)
    if resealed:
        del entry["sha256"]
    else:
        why = "content hash differs"
    path.write_text(json.dumps(entry))
    fresh = Evaluator(model, digits, cache_dir=tmp_path)
    with pytest.warns(UserWarning, match=f"{path.name} is invalid .*{why}.*recomputing"):
        got = fresh.evaluate(plan)
    assert not got.cached and fresh.real_evaluations == 1 and got.accuracy == want.accuracy
    repaired = json.loads(path.read_text())["result"]
    assert {k: v for k, v in repaired.items() if k != "seconds"} == \
        {k: v for k, v in want.to_dict().items() if k != "seconds"}  # the entry is rewritten


def test_a_plausible_edit_of_a_disk_entry_is_caught_by_its_content_hash(model, digits, tmp_path):
    plan = uniform_plan(5)
    want = Evaluator(model, digits, cache_dir=tmp_path).evaluate(plan)
    (path,) = tmp_path.glob("evaluations/*/*.json")
    entry = json.loads(path.read_text())
    entry["result"]["accuracy"] = 0.5  # 180 of 360: in range, a whole count, and wrong
    path.write_text(json.dumps(entry))
    with pytest.warns(UserWarning, match="content hash differs"):
        assert Evaluator(model, digits, cache_dir=tmp_path).evaluate(plan).accuracy == want.accuracy != 0.5


def test_non_finite_fp32_model_is_refused_up_front_naming_the_tensor(model, digits):
    import copy

    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.fc1.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="fp32 model has 1 NaN/inf value.*'fc1.weight'"):
        Evaluator(broken, digits)


def test_fine_tune_that_breaks_a_kernel_names_it_as_the_cause(model, digits):
    """A huge learning rate makes some kernel unquantizable mid fine-tune: the result is
    'diverged' with the step and the kernel, not an exception and not 'loss became nan'."""
    ev = Evaluator(model, digits, finetune_lr=1e12, optimizer="sgd")
    r = ev.evaluate(uniform_plan(4), Fidelity.short(20))
    assert r.status == "diverged"
    assert re.search(r"fine-tune diverged at step \d+ of 20: the weights of kernel '(conv1|fc1|fc2)' "
                     r"(grew to max\|w\| = [\d.e+]+|became NaN/inf).*lower the fine-tune learning rate", r.message)


# -- divergence -----------------------------------------------------------------------------


def test_diverged_finetune_is_reported_and_next_plan_still_evaluates(model, digits, compress, tmp_path):
    bad, good = uniform_plan(2), uniform_plan(4)
    ev = Evaluator(model, digits, compress=poison_plan(compress, bad), cache_dir=tmp_path)
    fp32_weights = model_fingerprint(model)

    r = ev.evaluate(bad, Fidelity.short(10))
    assert r.status == "diverged" and not r.ok
    assert "fine-tune loss became nan at step 1 of 10" in r.message
    before = ev.evaluate(bad, Fidelity.none())  # the documented fallback: metrics before fine-tune
    assert before.cached and before.ok
    assert (r.accuracy, r.loss, r.logit_mse) == (before.accuracy, before.loss, before.logit_mse)
    assert 0.0 < r.accuracy <= 1.0

    ok = ev.evaluate(good, Fidelity.short(10))
    assert ok.status == "ok" and ok.finetune_steps == 10 and math.isfinite(ok.loss)
    assert model_fingerprint(model) == fp32_weights  # the fp32 model was never touched
    # the diverged result is cached under its own key only, and survives on disk as JSON
    again = Evaluator(model, digits, compress=poison_plan(compress, bad), cache_dir=tmp_path)
    assert again.evaluate(bad, Fidelity.short(10)).status == "diverged"
    assert again.evaluate(good, Fidelity.short(10)).status == "ok"
    assert again.real_evaluations == 0


def test_diverged_final_finetune_returns_the_model_before_fine_tuning(model, digits, compress):
    bad = uniform_plan(2)
    ev = Evaluator(model, digits, compress=poison_plan(compress, bad))
    small, result = ev.final_finetune(bad, epochs=1)
    assert result.status == "diverged"
    after = ev.measure(small, "test")
    assert after.finite and after.accuracy == result.accuracy


def test_huge_learning_rate_diverges_without_raising(model, digits):
    ev = Evaluator(model, digits, optimizer="sgd", finetune_lr=1e30)
    r = ev.evaluate(uniform_plan(8), Fidelity.short(20))
    assert r.status == "diverged"
    assert r.accuracy == ev.evaluate(uniform_plan(8)).accuracy
    assert "lr 1e+30" in r.message


class _NaNAlways(nn.Module):
    def forward(self, x):
        return x * float("nan")


def test_non_finite_outputs_without_finetune_score_zero(model, digits, compress, tmp_path):
    bad = uniform_plan(6)
    ev = Evaluator(model, digits, compress=poison_plan(compress, bad, _NaNAlways), cache_dir=tmp_path)
    r = ev.evaluate(bad)
    assert (r.status, r.accuracy) == ("diverged", 0.0)
    assert "NaN/inf (no fine-tuning involved)" in r.message
    assert r.to_dict()["loss"] is None  # JSON-safe
    assert EvalResult.from_dict(r.to_dict()).status == "diverged"
    ft = ev.evaluate(bad, Fidelity.short(3))
    assert ft.status == "diverged" and ft.accuracy == 0.0 and "also non-finite" in ft.message


# -- final fine-tune ------------------------------------------------------------------------


def test_final_finetune_returns_model_and_caches_result(model, digits):
    ev = Evaluator(model, digits, batch_size=128)
    plan = uniform_plan(3)
    small, result = ev.final_finetune(plan, epochs=1)
    assert result.split == "test" and result.fidelity == Fidelity.final(1) and result.ok
    again = ev.measure(small, "test")
    assert (again.accuracy, again.loss) == pytest.approx((result.accuracy, result.loss))
    assert ev.evaluate(plan, Fidelity.final(1), split="test").cached
    assert not any(p is q for p in small.parameters() for q in model.parameters())


def test_pruning_plans_evaluate_and_stay_pruned_through_fine_tuning(model, digits):
    ev = Evaluator(model, digits)
    pruned = Plan(
        {
            "conv1": LayerConfig(8, keep_ratio=0.5),
            "fc1": LayerConfig(8, keep_ratio=0.25),
            "fc2": LayerConfig(8),
        }
    )
    plain, cut = ev.evaluate(uniform_plan(8)), ev.evaluate(pruned)
    assert cut.ok and cut.logit_mse > 10 * plain.logit_mse
    short = ev.evaluate(pruned, Fidelity.short(20))
    assert short.ok and short.loss < cut.loss
    small, final = ev.final_finetune(pruned, epochs=1, split="val")
    assert final.ok
    rows_alive = small.conv1.weight.detach().flatten(1).abs().sum(dim=1) > 0  # (8,)
    assert int(rows_alive.sum()) == 4  # masked channels are still exactly zero


def test_importance_is_part_of_the_cache_identity(model, digits, compress, tmp_path):
    l1 = Evaluator(model, digits, cache_dir=tmp_path)
    l2 = Evaluator(model, digits, cache_dir=tmp_path, importance="l2")
    assert l1.fingerprint != l2.fingerprint
    assert "importance=l2" in l2.settings()["compress"]
    with pytest.raises(ValueError, match="importance configures the default compressor"):
        Evaluator(model, digits, compress=compress, importance="l2")


def test_result_dict_round_trip(model, digits):
    r = Evaluator(model, digits).evaluate(uniform_plan(8), Fidelity.short(2))
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["fidelity"] == "short-2" and EvalResult.from_dict(d) == r


def test_bad_settings_are_refused(model, digits):
    with pytest.raises(ValueError, match="batch_size"):
        Evaluator(model, digits, batch_size=0, compress=lambda m, p: m)
    with pytest.raises(ValueError, match="finetune_lr"):
        Evaluator(model, digits, finetune_lr=float("nan"), compress=lambda m, p: m)
    with pytest.raises(ValueError, match="unknown optimizer"):
        Evaluator(model, digits, optimizer="lbfgs", compress=lambda m, p: m)


# -- user evaluators ------------------------------------------------------------------------


PLAN = Plan({"fc": LayerConfig(4)})


def test_as_evaluate_fn_accepts_float_and_dict():
    assert as_evaluate_fn(lambda p: 0.75)(PLAN) == {"accuracy": 0.75}
    assert as_evaluate_fn(lambda p: {"accuracy": 1, "latency_ms": 3.2})(PLAN) == {
        "accuracy": 1.0,
        "latency_ms": 3.2,
    }
    assert as_evaluate_fn(lambda p: torch.tensor(0.5))(PLAN) == {"accuracy": 0.5}


@pytest.mark.parametrize(
    "value, error, match",
    [
        (float("nan"), ValueError, "returned nan .*finite"),
        (float("inf"), ValueError, "finite"),
        (1.5, ValueError, r"must be in \[0, 1\] \(a percentage"),
        (-0.1, ValueError, r"must be in \[0, 1\]$"),
        ("0.9", TypeError, "expected a float accuracy"),
        (True, TypeError, "expected a float accuracy"),
        (None, TypeError, "expected a float accuracy"),
        ({"acc": 0.9}, ValueError, "without 'accuracy'"),
        ({"accuracy": float("nan")}, ValueError, "finite"),
    ],
)
def test_as_evaluate_fn_rejects_bad_returns(value, error, match):
    fn = as_evaluate_fn(lambda p: value)
    with pytest.raises(error, match=match) as err:
        fn(PLAN)
    assert PLAN.content_hash() in str(err.value)


def test_as_evaluate_fn_with_evaluator(model, digits):
    ev = Evaluator(model, digits)
    fn = as_evaluate_fn(ev, fidelity=Fidelity.short(3))
    out = fn(uniform_plan(8))
    assert out["status"] == "ok" and out["fidelity"] == "short-3" and 0 <= out["accuracy"] <= 1
    assert fn(uniform_plan(8))["cached"] is True
    with pytest.raises(TypeError, match="Evaluator or a callable"):
        as_evaluate_fn(42)  # type: ignore[arg-type]


_CLI_LIKE_RUN = """
import json, sys, torch
from hirelc.data import load_dataset
from hirelc.evaluate import Evaluator, Fidelity
from hirelc.inventory import inspect
from hirelc.plan import Plan
from hirelc.zoo import create_model

torch.manual_seed(0)
data = load_dataset("digits", seed=0)
model = create_model("releq_lenet", in_channels=1, num_classes=10, image_size=8)
plan = Plan.uniform(inspect(model, data.example_input(2)), bits=4)
ev = Evaluator(model, data, cache_dir=sys.argv[1])
result = ev.evaluate(plan, Fidelity.short(3))
print(json.dumps({"result": result.to_dict(), "counters": ev.counters()}))
"""


@pytest.mark.slow
def test_two_processes_share_the_disk_cache(tmp_path):
    import subprocess
    import sys

    def run():
        out = subprocess.run(
            [sys.executable, "-c", _CLI_LIKE_RUN, str(tmp_path)], capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert not first["result"]["cached"] and first["counters"]["real_evaluations"] == 1
    assert second["result"]["cached"] and second["counters"]["real_evaluations"] == 0
    assert second["counters"]["disk_hits"] == 1 and second["counters"]["finetune_steps"] == 0
    assert second["result"] | {"cached": False} == first["result"]
