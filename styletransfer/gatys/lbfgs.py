"""Limited-memory BFGS on NDArrays, with a backtracking line search and box bounds.

Written for the image optimisation (one large vector, an objective that costs a forward and a
backward pass of VGG): it runs on the run's context, one evaluation at a time, so the caller can
report and stop between iterations. Bounds are kept by projection (clipping each trial point),
as the PyTorch style-transfer tools do, rather than L-BFGS-B's Cauchy point: the pixel range
is rarely active in this problem, and projection keeps every step a plain array operation.
"""
from mxnet import nd


class LBFGS:
    """Minimise f(x) from x0. `evaluate(x)` returns (f as a float, gradient NDArray, extra).

    Each `step()` makes one iteration: a two-loop-recursion direction from the last `history`
    curvature pairs, then a backtracking line search (Armijo condition) starting at step 1
    (at the first iteration, at 1/|g|_1 as the pixel scale is unknown).
    """

    def __init__(self, x0, evaluate, lower=None, upper=None, history=20, c1=1e-4,
                 max_backtracks=20):
        self.evaluate = evaluate
        self.lower, self.upper = lower, upper
        self.history, self.c1, self.max_backtracks = history, c1, max_backtracks
        self.x = self._project(x0.copy())
        self.f, self.g, self.extra = evaluate(self.x)
        self.pairs = []   # (s, y, 1 / y.s), oldest first
        self.evaluations = 1

    def _project(self, x):
        if self.lower is not None:
            x = nd.broadcast_maximum(x, self.lower)
        if self.upper is not None:
            x = nd.broadcast_minimum(x, self.upper)
        return x

    def _direction(self):
        q = -self.g
        alphas = []
        for s, y, rho in reversed(self.pairs):
            alpha = rho * nd.sum(s * q).asscalar()
            q = q - alpha * y
            alphas.append(alpha)
        if self.pairs:
            s, y, rho = self.pairs[-1]
            q = q * (1.0 / (rho * nd.sum(y * y).asscalar()))
        for (s, y, rho), alpha in zip(self.pairs, reversed(alphas)):
            beta = rho * nd.sum(y * q).asscalar()
            q = q + (alpha - beta) * s
        return q

    def step(self):
        """One iteration; returns False when no decrease could be found (converged)."""
        d = self._direction()
        slope = nd.sum(self.g * d).asscalar()
        if not slope < 0:                 # not a descent direction: restart from the gradient
            self.pairs = []
            d = -self.g
            slope = nd.sum(self.g * d).asscalar()
        if self.pairs:
            t = 1.0
        else:
            t = min(1.0, 1.0 / max(nd.sum(nd.abs(self.g)).asscalar(), 1e-12))
        for _ in range(self.max_backtracks):
            x_new = self._project(self.x + t * d)
            f_new, g_new, extra = self.evaluate(x_new)
            self.evaluations += 1
            decrease = nd.sum(self.g * (x_new - self.x)).asscalar()
            if f_new <= self.f + self.c1 * decrease:
                break
            t *= 0.5
        else:
            return False
        s, y = x_new - self.x, g_new - self.g
        ys = nd.sum(y * s).asscalar()
        if ys > 1e-10:                     # keep only pairs that keep the Hessian positive
            self.pairs.append((s, y, 1.0 / ys))
            if len(self.pairs) > self.history:
                self.pairs.pop(0)
        self.x, self.f, self.g, self.extra = x_new, f_new, g_new, extra
        return True
