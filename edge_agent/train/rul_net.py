"""A one-hidden-layer ReLU regressor in numpy: forward, backward, Adam.

``x [b, d] -> relu(x W1 + b1) [b, h] -> W2 + b2 -> [b]``. An ensemble of such
networks is itself one wider network (first layers side by side, output
weights averaged), which is how :mod:`rul_graph` exports it.

Hand-written backprop keeps training to numpy (the ``train`` extra); float64
throughout, and all randomness comes from the seeded generator passed in.
"""

from __future__ import annotations

import numpy as np

Params = dict[str, np.ndarray]


def init_params(d: int, hidden: int, rng: np.random.Generator) -> Params:
    """He-uniform first layer (ReLU), Glorot-uniform output layer, zero biases."""
    lim1 = np.sqrt(6.0 / d)
    lim2 = np.sqrt(6.0 / (hidden + 1))
    return {
        "w1": rng.uniform(-lim1, lim1, size=(d, hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.uniform(-lim2, lim2, size=(hidden, 1)),
        "b2": np.zeros(1),
    }


def forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictions ``[b]`` and the hidden activations (for backward)."""
    h = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    return (h @ params["w2"] + params["b2"])[:, 0], h


def backward(params: Params, x: np.ndarray, h: np.ndarray, dy: np.ndarray) -> Params:
    """Gradients given ``dy`` = dLoss/dprediction ``[b]``."""
    g = dy[:, None]
    gh = (g @ params["w2"].T) * (h > 0)
    return {"w2": h.T @ g, "b2": g.sum(axis=0), "w1": x.T @ gh, "b1": gh.sum(axis=0)}


class Adam:
    """Adam with decoupled weight decay on weight matrices (not on biases)."""

    def __init__(self, params: Params, lr: float, decay: float = 0.0) -> None:
        self.lr, self.decay, self.t = lr, decay, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: Params, grads: Params, lr_scale: float = 1.0) -> None:
        """Update ``params`` in place."""
        self.t += 1
        b1, b2 = 0.9, 0.999
        lr = self.lr * lr_scale * np.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for key, g in grads.items():
            self.m[key] = b1 * self.m[key] + (1 - b1) * g
            self.v[key] = b2 * self.v[key] + (1 - b2) * g * g
            params[key] -= lr * self.m[key] / (np.sqrt(self.v[key]) + 1e-8)
            if self.decay and key.startswith("w"):
                params[key] -= self.lr * lr_scale * self.decay * params[key]
