"""The HiReLC active-learning loop (seed 002: "an iterative active learning loop interleaves
surrogate-guided RL optimization with post-compression fine-tuning"), as a `Proposer`, so
the shared driver owns the budget, stop reasons, ledger and journal.

One cycle (`_cycle`), run whenever the last cycle's proposals are used up:

1. HLAs: train on the cheap reward, propose block shares, vote (`hla.HLAEnsemble`);
   the vote realises a context plan (`allocation.Allocator.realise`).
2. LLAs: each block's policy trains on its budget; its episode's reward is the cheap
   predicted accuracy of the context plan with the block's choices, repaired onto the
   target, minus the block-budget penalty (`lla.BlockEnv`).
3. Pool: `pool_size` plans sampled from the policies, plus the vote's context plan and the
   Fisher prior plan (the greedy allocation, always the first evaluation of a search),
   one-choice moves from the best real plans and uniformly random plans (`pool`), each
   repaired by `problem.candidate`; already evaluated ones dropped.
4. Proxy: a few pool plans get a measured proxy; the cheap estimate is recalibrated.
5. Acquisition: batch Thompson sampling over the surrogate ensemble (`pool.thompson_picks`);
   before the surrogate exists, the top proxy-predicted plans plus seeded random picks
   -> proposed for real evaluation.

`observe` collects the real results; at the next cycle the surrogate's Spearman rho on
the evaluations it has not seen is recorded, then it is retrained on every real evaluation
and the HLAs get their realised reward. Cheap reward = surrogate mean once `cold_start`
real evaluations exist (never with `no_surrogate`), else the calibrated proxy score.

Deterministic for a seed (SB3 and torch seeded), so a resumed job replays the same
proposals and the ledger answers the journaled ones for free.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from hirelc.evaluate.calibrate import measure_damage_model
from hirelc.methods.driver import Proposer
from hirelc.methods.hirelc.allocation import Allocator
from hirelc.methods.hirelc.config import HiReLCConfig
from hirelc.methods.hirelc.features import PlanFeaturizer, blocks, kernel_features, sensitivity
from hirelc.methods.hirelc.hla import ENSEMBLE, HLAEnsemble
from hirelc.methods.hirelc.ladder import BudgetLadder
from hirelc.methods.hirelc.lla import BlockEnv, LowLevelAgent
from hirelc.methods.hirelc.pool import distinct_new, local_moves, thompson_picks
from hirelc.methods.hirelc.proxy import ProxyModel
from hirelc.methods.hirelc.surrogate import cross_validated_rho, spearman
from hirelc.methods.ledger import Evaluation
from hirelc.methods.problem import SearchProblem
from hirelc.plan import LayerConfig, Plan

MIN_LLA_STEPS = 64  # one MaskablePPO rollout
RANDOM_ATTEMPTS = 200  # random plans tried when the policies only repeat evaluated plans
CV_ROWS_PER_FOLD = 4  # fewer evaluations than 4 per fold: no cross-validated rho (the main job's 12 gave -0.65)


class HiReLCSearch(Proposer):
    """Hierarchical ensemble RL with Fisher guidance and a surrogate; see the module doc."""

    def __init__(self, problem: SearchProblem, config: HiReLCConfig | None = None, seed: int = 0):
        c = config or HiReLCConfig()
        self.ladder = BudgetLadder(problem) if problem.target.kind == "max_accuracy_drop" else None
        if self.ladder is not None:  # an accuracy target: search at a moving size budget
            problem = self.ladder.problem
        self.config, self.seed = c, seed
        self.problem = problem = self._searched(problem)
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.blocks = blocks(problem, c.flat)
        self.alloc = Allocator(problem, self.blocks)
        self.proxy = ProxyModel(problem, problem.proxy)
        self.featurize = PlanFeaturizer(problem)
        self.surrogate = c.make_surrogate(seed)
        self.prior = self.alloc.prior_shares(use_fisher=not c.no_fisher)
        sens = sensitivity(problem)
        self.block_sens = np.array([sum(sens[n] for n in b) for b in self.blocks]) * (not c.no_fisher)
        self.block_size = self.alloc.prior_shares(use_fisher=False)
        self.hlas = None if c.flat else HLAEnsemble(self.prior, self._shares_reward, seed,
                                                    ENSEMBLE[:1] if c.single_hla else ENSEMBLE)
        feats = kernel_features(problem, use_fisher=not c.no_fisher)
        self.envs = [BlockEnv(problem, b, feats, self._block_reward(i), c.budget_penalty)
                     for i, b in enumerate(self.blocks)]
        self.llas = [LowLevelAgent(env, seed + 7 * i) for i, env in enumerate(self.envs)]
        self.context = self.alloc.greedy
        self.vote_shares: np.ndarray | None = None
        self.proposals: list[np.ndarray] = []
        self.queue: list[Plan] = []
        self.history: list[Evaluation] = []
        self.trained_on = 0  # real evaluations the surrogate was last fitted on
        self.cycles: list[dict[str, Any]] = []
        self.timing = {"rl": 0.0, "surrogate": 0.0, "pool": 0.0}
        self._memo: dict[str, float] = {}
        self._block_memo: dict[tuple, float] = {}

    def _searched(self, problem: SearchProblem) -> SearchProblem:
        if self.config.no_fisher:  # the ablation's repair ranks moves by plain weight MSE, not Fisher damage
            return replace(problem, damage=measure_damage_model(problem.space))
        return problem

    def _rebind(self, problem: SearchProblem) -> None:
        """Search `problem` (the same one at another size budget) from the next cycle on."""
        self.problem = self.proxy.problem = self._searched(problem)
        self.alloc = Allocator(self.problem, self.blocks)
        for env in self.envs:
            env.problem = self.problem
        self.context = self.alloc.greedy

    # --- ask / tell ----------------------------------------------------------------------
    def propose(self, n: int) -> list[Plan]:
        if not self.queue:
            self._learn_from_reals()
            self._cycle()
        out, self.queue = self.queue[:n], self.queue[n:]
        return out

    def observe(self, evaluations: list[Evaluation]) -> None:
        self.history += [ev for ev in evaluations if ev.plan_hash not in {h.plan_hash for h in self.history}]

    def options(self) -> dict[str, Any]:
        self._learn_from_reals()
        return self.config.to_dict() | {"hirelc": self.summary() | {"rho_cross_validated": self._cv_rho()}}

    def _cv_rho(self, x: np.ndarray | None = None) -> dict[str, Any] | None:
        """The surrogate's rho on every real evaluation, each held out of the fit that predicts
        it (`cross_validated_rho`); None without a surrogate or with fewer than
        `CV_ROWS_PER_FOLD` evaluations per fold. x: the history's features, when the caller
        has just computed them for the surrogate's fit."""
        c = self.config
        if c.no_surrogate or c.cv_folds == 0 or len(self.history) < max(c.cold_start, CV_ROWS_PER_FOLD * c.cv_folds):
            return None
        if x is None:
            x = np.stack([self._features(ev.plan) for ev in self.history])
        rho = cross_validated_rho(x, [ev.accuracy for ev in self.history],
                                  lambda: c.make_surrogate(self.seed),
                                  c.cv_folds, self.seed)
        return {"rho": rho, "folds": c.cv_folds, "n": len(self.history)}

    def reference_plan(self) -> Plan:
        """The Fisher prior plan (greedy allocation at the current budget): the first
        evaluation of a search, kept among the finalists (`SearchResult.finalists`)."""
        return self.alloc.greedy

    # --- the cheap reward ------------------------------------------------------------------
    @property
    def use_surrogate(self) -> bool:
        return (not self.config.no_surrogate) and self.surrogate.ready

    def predict(self, plans: list[Plan]) -> tuple[np.ndarray, np.ndarray]:
        """(predicted score, uncertainty) of each plan: surrogate, or proxy in cold start."""
        preds = self._member_predictions(plans)
        return preds.mean(0), preds.std(0)

    def _member_predictions(self, plans: list[Plan]) -> np.ndarray:
        """(members, plans): each surrogate member's prediction, or in cold start one row of
        proxy scores (no spread)."""
        if not self.use_surrogate:
            return np.array([[self.proxy.score(p) for p in plans]])
        return self.surrogate.member_predictions(np.stack([self._features(p) for p in plans]))

    def _cheap(self, plan: Plan) -> float:
        key = plan.content_hash()
        if key not in self._memo:
            self._memo[key] = float(self.predict([plan])[0][0])
        return self._memo[key]

    def _shares_reward(self, shares: np.ndarray) -> float:
        return self._cheap(self.alloc.realise(shares))

    def _block_reward(self, b: int):
        def reward(cfgs: dict[str, LayerConfig]) -> float:
            key = (b, tuple(sorted(cfgs.items())))
            if key not in self._block_memo:  # repair is the costly part: once per block choice
                self._block_memo[key] = self._cheap(self.problem.candidate(Plan(self.context.layers | cfgs)))
            return self._block_memo[key]

        return reward

    # --- one cycle -------------------------------------------------------------------------
    def _cycle(self) -> None:
        c, record = self.config, {"cycle": len(self.cycles), "reward_source": self._reward_source()}
        torch.manual_seed(self.seed + 1000 * len(self.cycles))
        self._memo.clear()  # the predictor and the context plan changed since the last cycle
        self._block_memo.clear()
        start = time.perf_counter()
        self._vote(record)
        steps = max(MIN_LLA_STEPS, c.lla_steps // len(self.llas))
        for env, lla, budget in zip(self.envs, self.llas, self.alloc.budgets(self.vote_shares)):
            env.set_budget(budget)
            lla.learn(steps)
        self.timing["rl"] += time.perf_counter() - start
        start, proxy_before = time.perf_counter(), self.proxy.seconds
        pool = self._pool()
        self._measure_proxies(pool, record)
        preds = self._member_predictions(pool) if pool else np.zeros((1, 0))
        if self.config.fill_slack and pool:
            pool = self._with_filled(pool, preds.mean(0))
            preds = self._member_predictions(pool)
        mean = preds.mean(0)
        self.queue = self._acquire(pool, preds)
        if not self.cycles and self.alloc.greedy in pool:  # Fisher is the prior: evaluate its plan first
            self.queue = [self.alloc.greedy] + [p for p in self.queue if p != self.alloc.greedy][: len(self.queue) - 1]
        self.timing["pool"] += time.perf_counter() - start - (self.proxy.seconds - proxy_before)
        record |= {"pool": len(pool), "proposed": [p.content_hash() for p in self.queue],
                   "predicted": [round(float(mean[pool.index(p)]), 4) for p in self.queue],
                   "block_decisions": self._decisions()}
        self.cycles.append(record)

    def _reward_source(self) -> str:
        return "surrogate" if self.use_surrogate else f"proxy:{self.proxy.kind}"

    def _vote(self, record: dict[str, Any]) -> None:
        if self.hlas is None:
            self.vote_shares = np.ones(1)
        else:
            best = self._best()
            obs = self.hlas.observation(self.block_sens, self.block_size, self.vote_shares,
                                        None if best is None else self.alloc.shares_of(best.plan),
                                        0.0 if best is None else self.problem.score(best),
                                        min(len(self.cycles) / 10, 1.0))
            self.hlas.learn(self.config.hla_steps)
            self.proposals = self.hlas.propose(obs)
            self.vote_shares = self.hlas.vote(self.proposals)
            record["hla"] = {"agents": self.hlas.kinds, "proposals": [_r(p) for p in self.proposals],
                             "weights": _r(self.hlas.weights), "vote": _r(self.vote_shares)}
        self.context = self.alloc.realise(self.vote_shares)
        record["budgets_bytes"] = [int(b) for b in self.alloc.budgets(self.vote_shares)]

    def _pool(self) -> list[Plan]:
        """The Fisher prior plan (greedy allocation), the vote's context plan, `pool_size`
        policy samples, one-choice moves from the best real plans and uniformly random
        plans, each repaired, minus evaluated ones (`pool` module doc: why all three).
        When converged policies repeat evaluated plans, more random plans are drawn, so a
        small space is explored to the end instead of stopping early."""
        c, seen = self.config, {ev.plan_hash for ev in self.history}
        pool: dict[str, Plan] = {}
        distinct_new([self.alloc.greedy, self.context] + [self._sample() for _ in range(c.pool_size)], seen, pool)
        parents = sorted(self.history, key=self.problem.selection_key, reverse=True)[: c.local_parents]
        for i, parent in enumerate(parents):
            moves = local_moves(self.problem.space, parent.plan, self.rng, c.local_pool // len(parents))
            distinct_new((self.problem.candidate(p) for p in moves), seen, pool)
        distinct_new((self.problem.candidate(self.problem.space.sample(self.rng)) for _ in range(c.random_pool)),
                     seen, pool)
        for _ in range(RANDOM_ATTEMPTS):
            if len(pool) >= c.evals_per_cycle:
                break
            distinct_new([self.problem.candidate(self.problem.space.sample(self.rng))], seen, pool)
        return list(pool.values())

    def _with_filled(self, pool: list[Plan], mean: np.ndarray) -> list[Plan]:
        """The pool plus the best predicted plans with their unused budget spent on the
        least-damage moves up (`repair(fill=True)`): a plan well under the target leaves
        accuracy on the table."""
        seen = {ev.plan_hash for ev in self.history} | {p.content_hash() for p in pool}
        extra: dict[str, Plan] = {}
        for i in np.argsort(-mean, kind="stable")[: 2 * self.config.evals_per_cycle]:
            filled = self.problem.repairer(pool[i], fill=True)
            if filled.content_hash() not in seen:
                extra.setdefault(filled.content_hash(), filled)
        return pool + list(extra.values())

    def _sample(self) -> Plan:
        layers = dict(self.context.layers)
        for lla in self.llas:
            layers |= lla.sample()
        return self.problem.candidate(Plan({n: layers[n] for n in self.problem.names}))

    def _measure_proxies(self, pool: list[Plan], record: dict[str, Any]) -> None:
        """Measure the proxy on the best-estimated and a few random pool plans; report how
        well the estimate ranked them before recalibrating."""
        if not pool:
            return
        k = min(self.config.proxy_calls, len(pool))
        by_estimate = sorted(range(len(pool)), key=lambda i: self.proxy.estimate(pool[i]))
        picks = by_estimate[: (k + 1) // 2]
        rest = [i for i in range(len(pool)) if i not in picks]
        picks += [rest[i] for i in self.rng.permutation(len(rest))[: k - len(picks)]]
        estimates = [self.proxy.estimate(pool[i]) for i in picks]
        measured = [self.proxy.measure(pool[i]) for i in picks]
        self.proxy.calibrate()
        record["proxy"] = {"measured": len(picks), "estimate_rho": spearman(estimates, measured)}

    def _acquire(self, pool: list[Plan], preds: np.ndarray) -> list[Plan]:
        """Thompson sampling over the ensemble once the surrogate exists; before that (and
        under "top_spread") the top predicted plans plus an exploration share, by spread or,
        without one, at random. preds: `_member_predictions(pool)`."""
        n = min(self.config.evals_per_cycle, len(pool))
        if n == 0:  # every candidate of a small space is evaluated
            return []
        if self.use_surrogate and self.config.acquisition == "thompson":
            return [pool[i] for i in thompson_picks(preds, n, self.rng)]
        mean, std = preds.mean(0), preds.std(0)
        n_explore = int(round(self.config.uncertain_share * n))
        order = list(np.argsort(-mean, kind="stable"))
        chosen = order[: n - n_explore]
        rest = [i for i in order if i not in chosen]
        if self.use_surrogate:
            rest = sorted(rest, key=lambda i: -std[i])
        else:  # no spread yet: explore at random
            rest = [rest[i] for i in self.rng.permutation(len(rest))]
        return [pool[i] for i in chosen + rest[:n_explore]]

    # --- learning from real evaluations ----------------------------------------------------
    def _learn_from_reals(self) -> None:
        """Surrogate quality on unseen evaluations, refit, and the HLAs' realised reward."""
        new = self.history[self.trained_on:]
        if not new or not self.cycles:
            return
        last = self.cycles[-1]
        if self.surrogate.ready:
            mean, _ = self.surrogate.predict(np.stack([self._features(ev.plan) for ev in new]))
            last["surrogate"] = {"rho_unseen": spearman(list(mean), [ev.accuracy for ev in new]),
                                 "n_unseen": len(new), "trained_on": self.trained_on,
                                 "pairs": [[round(float(m), 4), round(ev.accuracy, 4)]
                                           for m, ev in zip(mean, new)]}
        last["real"] = {"accuracies": [round(ev.accuracy, 4) for ev in new],
                        "best_score": round(max(self.problem.score(ev) for ev in new), 4)}
        start = time.perf_counter()
        x = None
        if len(self.history) >= self.config.cold_start and not self.config.no_surrogate:
            x = np.stack([self._features(ev.plan) for ev in self.history])
            self.surrogate.fit(x, [ev.accuracy for ev in self.history])  # accuracy, whatever the budget
        self.trained_on = len(self.history)
        last["rho_cv"] = self._cv_rho(x)  # held-out rho over every evaluation so far: the bar's curve per cycle
        self.timing["surrogate"] += time.perf_counter() - start
        if self.hlas is not None and self.proposals:
            best = max(new, key=self.problem.selection_key)
            last["hla"]["realised_rewards"] = _r(self.hlas.reward(self.proposals, self.alloc.shares_of(best.plan)))
            last["hla"]["weights_after"] = _r(self.hlas.weights)
        if self.ladder is not None and self.ladder.update(self.history):
            last["next_budget_bytes"] = self.ladder.budget
            self._rebind(self.ladder.problem)

    def _features(self, plan: Plan) -> np.ndarray:
        return self.featurize(plan, self.proxy.estimate(plan))

    def _best(self) -> Evaluation | None:
        return self.problem.best(self.history)

    def _decisions(self) -> dict[str, str]:
        """Each LLA's most likely configs for its block (its policy's mode)."""
        out = {}
        for lla in self.llas:
            for name, cfg in lla.sample(deterministic=True).items():
                out[name] = _label(cfg)
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready: blocks, cycles (votes, weights, decisions, surrogate quality), timing."""
        return {"blocks": self.blocks, "prior_shares": _r(self.prior), "cycles": self.cycles,
                "proxy_calls": self.proxy.calls, "proxy_kind": self.proxy.kind,
                "seconds": {k: round(v, 2) for k, v in self.timing.items()} | {"proxy": round(self.proxy.seconds, 2),
                             "real": round(sum(ev.seconds for ev in self.history if not ev.replayed), 2)},
                "rho_by_cycle": [c.get("surrogate", {}).get("rho_unseen") for c in self.cycles],
                "rho_cv_by_cycle": [(c.get("rho_cv") or {}).get("rho") for c in self.cycles],
                "rho_unseen_last_3_cycles": pooled_rho(self.cycles[-3:])} | (
                    {} if self.ladder is None else {"budget_ladder_bytes": self.ladder.steps})


def pooled_rho(cycles: list[dict[str, Any]]) -> float | None:
    """Spearman rho of the surrogate's predictions against the real accuracies, pooled over the
    (prediction, real) pairs of `cycles`, each predicted before its plan was evaluated: one
    cycle's 6 pairs give a very noisy rho.

    >>> pooled_rho([{"surrogate": {"pairs": [[0.1, 0.2], [0.3, 0.5]]}}, {"surrogate": {"pairs": [[0.2, 0.3]]}}, {}])
    1.0
    """
    pairs = [p for c in cycles for p in c.get("surrogate", {}).get("pairs", [])]
    return spearman([p[0] for p in pairs], [p[1] for p in pairs])


def _label(cfg: LayerConfig) -> str:
    gran = f"per_group:{cfg.group_size}" if cfg.granularity == "per_group" else cfg.granularity
    return f"{cfg.bits}b/keep{cfg.keep_ratio:g}/{cfg.number_format}/{gran}"


def _r(values: Any) -> list[float]:
    return [round(float(v), 4) for v in values]
