"""BatchNorm with batch statistics whose second derivative is cheap: for second-order MAML on CPU.

Second-order MAML differentiates the inner loop's gradient, so autograd runs the derivative of
BatchNorm's backward ("double backward"). PyTorch's own (``batchnorm_double_backward``, a composite of
generic operators) costs about 10x the forward and backward together on a CPU: 4-5 ms for one Omniglot
task's 5 support images in the first layer of Conv4 (64 x 28 x 28), against 0.3-0.5 ms for the forward and
backward; it was 40 % of the second-order part of a MAML task (docs/images.md, and
benchmarks/images/batchnorm_double_backward.py; ours: about 1 ms).

``batch_norm`` computes the same values with PyTorch's fused forward and backward kernels and its own
double backward: the closed form below, about 20 element-wise operations and 5 per-channel sums.
With ``g`` the incoming gradient, ``x̂`` the normalised input, ``r`` = 1/sqrt(var + eps) (the biased
variance of the batch, as in training-mode BatchNorm), ``M`` items
per channel, means over the items of a channel, and ``P(v) = v - mean(v) - x̂ mean(v x̂)``, the
backward is ``gx = w r P(g)``, ``gw = Σ g x̂``, ``gb = Σ g``; for cotangents ``u, uw, ub`` of those:

    d/dg = w r P(u) + uw x̂ + ub
    d/dw = r M (mean(u g) - mean(u) mean(g) - mean(u x̂) mean(g x̂))
    d/dx = uw r P(g) - w r² [x̂ (mean(u g) - mean(u) mean(g) - mean(u x̂) mean(g x̂))
                              + mean(g x̂) P(u) + mean(u x̂) P(g)]

For a third derivative (never needed by MAML: more inner steps multiply Hessians, they do not
differentiate them again) the same formulas run on statistics recomputed differentiably. Plain
autograd only: not for ``torch.func`` transforms (``vmap``), which keep ``F.batch_norm``.
"""

from __future__ import annotations

import torch


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)`` with a cheap double backward;
    ``x`` is ``[N, C, ...]``, ``weight`` and ``bias`` are tensors of ``C`` values (not None)."""
    if x.numel() // x.shape[1] <= 1:  # F.batch_norm's check: one value per channel has no variance
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
    return _BatchNorm.apply(x, weight, bias, eps)


def _channel(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-channel vector shaped to broadcast against ``like`` ([N, C, ...])."""
    return t.view(1, -1, *([1] * (like.dim() - 2)))


def _mean(t: torch.Tensor) -> torch.Tensor:
    """Per-channel mean of ``t`` over every dimension but 1, kept for broadcasting."""
    dims = [0, *range(2, t.dim())]
    return t.sum(dims, keepdim=True) / (t.numel() // t.shape[1])


def _native_backward(gy, x, weight, mean, invstd, eps, needed):
    """PyTorch's fused BatchNorm backward (training statistics): the gradients for x, weight, bias."""
    return torch.ops.aten.native_batch_norm_backward(gy, x, weight, None, None, mean, invstd, True, eps, needed)


class _BatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        y, mean, invstd = torch.native_batch_norm(x, weight, bias, None, None, True, 0.0, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight, mean, invstd = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a node whose own backward is the closed form
            gx, gw, gb = _BatchNormBackward.apply(gy, x, weight, mean, invstd, ctx.eps)
        else:
            gx, gw, gb = _native_backward(gy, x, weight, mean, invstd, ctx.eps, list(ctx.needs_input_grad[:3]))
        return gx, gw, gb, None


class _BatchNormBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gy, x, weight, mean, invstd, eps):
        ctx.set_materialize_grads(False)  # an output nobody differentiates arrives as None: its terms are skipped
        ctx.save_for_backward(gy, x, weight, mean, invstd)
        ctx.eps = eps
        return _native_backward(gy, x, weight, mean, invstd, eps, [True, True, True])

    @staticmethod
    def backward(ctx, u, uw, ub):
        g, x, weight, mean, invstd = ctx.saved_tensors
        if torch.is_grad_enabled():  # a third derivative: statistics that depend on x in the graph
            var, mean = torch.var_mean(x, [0, *range(2, x.dim())], unbiased=False, keepdim=True)
            r = (var + ctx.eps).rsqrt()
        else:
            mean, r = _channel(mean, x), _channel(invstd, x)
        w = _channel(weight, x)
        xhat = (x - mean) * r
        g_mean, b = _mean(g), _mean(g * xhat)
        proj_g = g - g_mean - xhat * b
        dx = dw = dg = None
        if u is not None:
            u_mean, a = _mean(u), _mean(u * xhat)
            cov = _mean(u * g) - u_mean * g_mean - a * b
            proj_u = u - u_mean - xhat * a
            dg = w * r * proj_u
            dw = (r * cov).flatten() * (x.numel() // x.shape[1])
            dx = -(w * r * r) * (xhat * cov + b * proj_u + a * proj_g)
        if uw is not None:
            uw = _channel(uw, x)
            dg = uw * xhat if dg is None else dg + uw * xhat
            dx = uw * r * proj_g if dx is None else dx + uw * r * proj_g
        if ub is not None:
            dg = torch.zeros_like(g) + _channel(ub, x) if dg is None else dg + _channel(ub, x)
        return dg, dx, dw, None, None, None
