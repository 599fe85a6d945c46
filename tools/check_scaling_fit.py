"""Refit `kindling lab scaling`'s points with SciPy, as Hoffmann et al.
(2022, approach 3) describe it: L-BFGS on the Huber loss (delta 1e-3) of
log-loss residuals, from their grid of starting points; then compare the
constants and the prediction with what Kindling's own Nelder-Mead fit wrote.

    .venv/bin/python tools/check_scaling_fit.py runs/scaling/results.json [--drop-tokens 501760]

--drop-tokens refits without the runs of that budget: a post-hoc look,
not a prediction (the runs' losses are already known).
"""
import argparse
import itertools
import json

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp


def fit(n, d, l):
    ln_n, ln_d, ln_l = np.log(n), np.log(d), np.log(l)

    def obj(t):
        a, b, e, alpha, beta = t
        pred = logsumexp([a - alpha * ln_n, b - beta * ln_d, np.full_like(ln_n, e)], axis=0)
        return huber(1e-3, pred - ln_l).sum()

    best = None
    for alpha, beta, e, a, b in itertools.product(
        np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5), np.arange(-1, 1.5, 0.5),
        np.arange(0, 30, 5), np.arange(0, 30, 5)
    ):
        r = minimize(obj, [a, b, e, alpha, beta], method="L-BFGS-B")
        if best is None or r.fun < best.fun:
            best = r
    a, b, e, alpha, beta = best.x
    return dict(E=np.exp(e), A=np.exp(a), alpha=alpha, B=np.exp(b), beta=beta, objective=best.fun)


def law(c, n, d):
    return c["E"] + c["A"] / n ** c["alpha"] + c["B"] / d ** c["beta"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--drop-tokens", type=int, action="append", default=[])
    args = ap.parse_args()
    r = json.load(open(args.results))
    pts = [p for p in r["points"] if p["tokens"] not in args.drop_tokens]
    n = np.array([p["params"] for p in pts], float)
    d = np.array([p["tokens"] for p in pts], float)
    l = np.array([p["loss"] for p in pts], float)
    c = fit(n, d, l)
    pr = r["prediction"]
    pred = law(c, pr["params"], pr["tokens"])
    k = r["law"]
    print(f"{len(pts)} runs fitted" + (f" (without budgets {args.drop_tokens}: post hoc)" if args.drop_tokens else ""))
    print("scipy L-BFGS:   E={E:.4f} A={A:.4e} alpha={alpha:.4f} B={B:.4e} beta={beta:.4f} (objective {objective:.3e})".format(**c))
    print("kindling (NM):  E={E:.4f} A={A:.4e} alpha={alpha:.4f} B={B:.4e} beta={beta:.4f}".format(**k))
    print(f"predicted loss of the larger run: scipy {pred:.4f}, kindling {pr['predicted_loss']:.4f}; measured {pr['actual_loss']:.4f}")
    print(f"error: scipy {100 * (pred - pr['actual_loss']) / pr['actual_loss']:+.2f}%, kindling {pr['error_percent']:+.2f}%")


if __name__ == "__main__":
    main()
