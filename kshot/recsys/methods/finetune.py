"""``finetune``: the transfer baseline. The same network as ``melu`` trained without an inner loop (plain
regression on the warm users' ratings, user = side features), then fine-tuned per new user: a few steps
of gradient descent on its support ratings over the decision layers (the shared inner loop, first order);
steps and step size tuned on the validation users."""

from .melu import MeLU


class FineTune(MeLU):
    name = "finetune"
    grid = {"test_steps": [5, 1, 2, 10, 20], "test_lr": [0.05, 0.01, 0.02, 0.1, 0.2]}
    inner_steps = 0
