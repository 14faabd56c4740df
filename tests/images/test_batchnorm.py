"""kshot.images.batchnorm: BatchNorm with batch statistics, PyTorch's values and derivatives, a cheaper double backward."""

import pytest
import torch
import torch.nn.functional as F

from kshot.images.batchnorm import batch_norm


def torch_bn(x, w, b):
    return F.batch_norm(x, None, None, w, b, True, 0.0, 1e-5)


def ours(x, w, b):
    return batch_norm(x, w, b, 1e-5)


def explicit_bn(x, w, b):
    """BatchNorm written out in elementary operators: its every derivative is autograd's own."""
    dims = [0, *range(2, x.dim())]
    var, mean = torch.var_mean(x, dims, unbiased=False, keepdim=True)
    shape = [1, -1] + [1] * (x.dim() - 2)
    return (x - mean) * (var + 1e-5).rsqrt() * w.view(shape) + b.view(shape)


def inputs(shape, channels_last, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    c = shape[1]
    w, b = torch.randn(c, generator=g, dtype=torch.float64), torch.randn(c, generator=g, dtype=torch.float64)
    gy = torch.randn(*shape, generator=g, dtype=torch.float64)
    cotangents = (
        torch.randn(*shape, generator=g, dtype=torch.float64),
        torch.randn(c, generator=g, dtype=torch.float64),
        torch.randn(c, generator=g, dtype=torch.float64),
    )
    return (x, w, b, gy), cotangents


def zeros_for_none(grads, like):
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, like)]


def derivatives(fn, tensors, cotangents, mask):
    """Value, gradient and the second derivative (for the cotangents of the gradient's parts in
    ``mask``) of ``fn``, every input a fresh leaf."""
    x, w, b, gy = (t.clone().requires_grad_() for t in tensors)
    y = fn(x, w, b)
    grads = torch.autograd.grad(y, (x, w, b), gy, create_graph=True)
    picked = [(g, u) for g, u, m in zip(grads, cotangents, mask) if m]
    second = torch.autograd.grad([g for g, _ in picked], (x, w, gy), [u for _, u in picked], allow_unused=True)
    return y, grads, zeros_for_none(second, (x, w, gy))


MASKS = [(1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1)]


@pytest.mark.parametrize(
    "shape,channels_last", [((5, 8, 6, 6), True), ((7, 4, 5, 3), False), ((9, 3), False), ((2, 3, 1, 1), False)]
)
@pytest.mark.parametrize("mask", MASKS)
def test_values_gradients_and_second_derivatives_are_pytorchs(shape, channels_last, mask):
    tensors, cotangents = inputs(shape, channels_last)
    y0, g0, s0 = derivatives(torch_bn, tensors, cotangents, mask)
    y1, g1, s1 = derivatives(ours, tensors, cotangents, mask)
    torch.testing.assert_close(y1, y0, rtol=0, atol=1e-12)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for a, b in zip(s1, s0):  # d/dx, d/dw, d/d(incoming gradient)
        assert a.abs().max() > 0 or b.abs().max() == 0
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("needs", [(True, True, True), (False, True, True), (True, False, False)])
def test_a_plain_backward_is_pytorchs_for_the_inputs_that_need_it(needs):
    tensors, _ = inputs((6, 5, 4, 4), True, seed=3)
    results = []
    for fn in (torch_bn, ours):
        x, w, b = (t.clone().requires_grad_(n) for t, n in zip(tensors[:3], needs))
        wanted = [t for t in (x, w, b) if t.requires_grad]
        results.append(torch.autograd.grad(fn(x, w, b), wanted, tensors[3]))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_one_value_per_channel_is_refused_as_by_pytorch():
    x, w, b = torch.randn(1, 3, 1, 1), torch.ones(3), torch.zeros(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        torch_bn(x, w, b)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ours(x, w, b)


def test_third_derivative_is_that_of_batchnorm_written_out():
    tensors, cotangents = inputs((6, 4, 3, 3), True, seed=1)
    results = []
    for fn in (ours, explicit_bn):
        x, w, b, gy = (t.clone().requires_grad_() for t in tensors)
        grads = torch.autograd.grad(fn(x, w, b), (x, w, b), gy, create_graph=True)
        second = torch.autograd.grad(grads, (x, w, gy), cotangents, create_graph=True)
        third = torch.autograd.grad(sum((s * s).sum() for s in second), (x, w, gy))
        results.append(third)
    for a, b in zip(*results):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_float32_channels_last_is_close_to_pytorch_and_keeps_the_layout():
    tensors, cotangents = inputs((5, 16, 8, 8), True, seed=2)
    tensors = [t.float().contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t.float() for t in tensors]
    cotangents = [t.float() for t in cotangents]
    _, _, s0 = derivatives(torch_bn, tensors, cotangents, (1, 1, 1))
    y1, g1, s1 = derivatives(ours, tensors, cotangents, (1, 1, 1))
    assert y1.is_contiguous(memory_format=torch.channels_last)
    assert g1[0].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(s1, s0):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
