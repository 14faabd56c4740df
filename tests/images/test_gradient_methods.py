"""Gradient-based methods (MAML, FOMAML, ANIL, Meta-SGD, Reptile) on the shared torch.func inner loop."""

import inspect
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kshot.cli import main
from kshot.core.errors import KshotError
from kshot.data import LabeledData
from kshot.images.backbones import MLP, Conv4, pure_forward, supports_pure_forward
from kshot.images.episodes import Episode, EpisodeSampler
from kshot.images.methods import ANIL, FOMAML, MAML, METHODS, MetaSGD, Reptile, build_method
from kshot.images.training import TrainConfig, TrainingError, load_method, meta_train


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run much faster on one thread (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_conv(**kw):
    return Conv4(hidden=4, depth=2, track_running_stats=False, image_size=8, **kw)


def image_episode(T=3, way=3, shot=2, query=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    support = torch.randn(T, way * shot, 1, 8, 8, generator=g)
    query_items = torch.randn(T, way * query, 1, 8, 8, generator=g)
    ar = torch.arange(way)
    return Episode(
        support,
        ar.repeat_interleave(shot).repeat(T, 1),
        query_items,
        ar.repeat_interleave(query).repeat(T, 1),
        ar.repeat(T, 1),
    )


# ---- exactness of the meta-gradient -------------------------------------------------------------------


def explicit_mlp(params, x):
    """The MLP backbone + head written out by hand (no functional_call)."""
    h = F.relu(F.linear(x.flatten(1), params["backbone.1.weight"], params["backbone.1.bias"]))
    h = F.linear(h, params["backbone.3.weight"], params["backbone.3.bias"])
    return F.linear(h, params["head.weight"], params["head.bias"])


def unrolled_meta_gradients(method, ep, lr, steps, first_order):
    """Meta-gradient by differentiating an explicitly unrolled inner loop with torch.autograd."""
    names = [n for n, _ in method.named_parameters()]
    theta = [p.detach().clone().requires_grad_(True) for _, p in method.named_parameters()]
    total = [torch.zeros_like(t) for t in theta]
    for t in range(ep.support.shape[0]):
        fast = list(theta)
        for _ in range(steps):
            inner = F.cross_entropy(explicit_mlp(dict(zip(names, fast)), ep.support[t]), ep.support_labels[t])
            grads = torch.autograd.grad(inner, fast, create_graph=not first_order)
            fast = [w - lr * g for w, g in zip(fast, grads)]
        outer = F.cross_entropy(explicit_mlp(dict(zip(names, fast)), ep.query[t]), ep.query_labels[t])
        for acc, g in zip(total, torch.autograd.grad(outer, theta)):
            acc += g / ep.support.shape[0]
    return dict(zip(names, total))


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_equals_unrolled_inner_loop(steps):
    torch.manual_seed(0)
    ep = image_episode(T=2, way=3)
    for cls, first_order in ((MAML, False), (FOMAML, True)):
        torch.manual_seed(0)
        method = cls(MLP(64, hidden=(6,), out_dim=5), way=3, inner_steps=steps, inner_lr=0.3).double()
        ep64 = Episode(ep.support.double(), ep.support_labels, ep.query.double(), ep.query_labels, ep.classes)
        ours = method.meta_gradients(ep64).grads
        ref = unrolled_meta_gradients(method, ep64, 0.3, steps, first_order)
        for n in ref:
            torch.testing.assert_close(ours[n], ref[n], rtol=1e-9, atol=1e-11)


def test_first_order_drops_exactly_the_second_order_term():
    """One step: MAML = (I - lr * H_support) g_query and FOMAML = g_query, at the adapted weights."""
    torch.manual_seed(1)
    ep = image_episode(T=1, way=3)
    ep = Episode(ep.support[0].double(), ep.support_labels[0], ep.query[0].double(), ep.query_labels[0], ep.classes[0])
    lr = 0.5
    maml = MAML(MLP(64, hidden=(6,), out_dim=5), way=3, inner_lr=lr).double()
    fomaml = FOMAML(MLP(64, hidden=(6,), out_dim=5), way=3, inner_lr=lr).double()
    fomaml.load_state_dict(maml.state_dict())
    g2, g1 = maml.meta_gradients(ep).grads, fomaml.meta_gradients(ep).grads
    names = [n for n, _ in maml.named_parameters()]
    theta = [p.detach().clone().requires_grad_(True) for _, p in maml.named_parameters()]
    g_s = torch.autograd.grad(
        F.cross_entropy(explicit_mlp(dict(zip(names, theta)), ep.support), ep.support_labels), theta, create_graph=True
    )
    fast = [(w - lr * g).detach() for w, g in zip(theta, g_s)]
    g_q = torch.autograd.grad(
        F.cross_entropy(explicit_mlp(dict(zip(names, [f.requires_grad_() for f in fast])), ep.query), ep.query_labels),
        fast,
    )
    hvp = torch.autograd.grad(g_s, theta, grad_outputs=g_q)
    for n, gq, h in zip(names, g_q, hvp):
        torch.testing.assert_close(g1[n], gq, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(g2[n] - g1[n], -lr * h, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("downsample", ["maxpool", "stride"])
@pytest.mark.parametrize("cls", [MAML, FOMAML])
def test_conv4_batchnorm_meta_gradient_equals_plain_autograd(cls, downsample):
    """Conv4 with batch-statistics BatchNorm (the Omniglot setting; max-pooling or MAML's strided
    convolutions), 2 inner steps: the torch.func meta-gradient equals plain torch.autograd through the same
    forward (graph kept for MAML, inner gradients detached for FOMAML)."""
    torch.manual_seed(0)
    ep = image_episode(T=2, way=3)
    method = cls(tiny_conv(downsample=downsample), way=3, inner_steps=2, inner_lr=0.4, strategy="loop").double()
    ours = method.meta_gradients(
        Episode(ep.support.double(), ep.support_labels, ep.query.double(), ep.query_labels, ep.classes)
    ).grads
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in method.named_parameters()}
    expected = {n: torch.zeros_like(p) for n, p in theta.items()}
    for t in range(2):
        fast = dict(theta)
        for _ in range(2):
            g = torch.autograd.grad(
                F.cross_entropy(method.logits(fast, ep.support[t].double()), ep.support_labels[t]),
                list(fast.values()),
                create_graph=cls is MAML,
            )
            fast = {n: w - 0.4 * (gi if cls is MAML else gi.detach()) for (n, w), gi in zip(fast.items(), g)}
        outer = F.cross_entropy(method.logits(fast, ep.query[t].double()), ep.query_labels[t])
        for n, gi in zip(theta, torch.autograd.grad(outer, list(theta.values()))):
            expected[n] += gi / 2
    for n in expected:
        torch.testing.assert_close(ours[n], expected[n], rtol=1e-8, atol=1e-10)


# ---- vmap and loop agree -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, options",
    [
        (MAML, {}),
        (FOMAML, {}),
        (ANIL, {}),
        (MetaSGD, {}),
        (Reptile, {}),
        (Reptile, {"inner_batch": 4, "transductive": False}),
        (MAML, {"inner_batch": 3, "transductive": False}),
    ],
)
def test_vmap_and_loop_give_the_same_losses_gradients_and_predictions(cls, options):
    ep = image_episode(T=3, way=3)
    torch.manual_seed(0)
    method = cls(tiny_conv(), way=3, inner_steps=2, inner_lr=0.2, **options)
    results = {}
    for strategy in ("loop", "vmap"):
        method.strategy = strategy
        method.chunk_size = 2 if strategy == "vmap" else None  # chunks of 2 + 1: exercises chunk_size
        r = method.meta_gradients(ep)
        results[strategy] = (r, method(ep.support, ep.support_labels, ep.query))
    (a, pa), (b, pb) = results["loop"], results["vmap"]
    torch.testing.assert_close(a.loss, b.loss)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(pa, pb)
    assert set(a.grads) == {n for n, _ in method.named_parameters()}
    for n in a.grads:
        torch.testing.assert_close(a.grads[n], b.grads[n], rtol=1e-4, atol=1e-6)
    assert pa.shape == (3, 12, 3)


@pytest.mark.parametrize("cls", [MAML, FOMAML, Reptile])
def test_threads_match_the_loop_and_restore_the_thread_count(cls):
    ep = image_episode(T=5, way=3)
    torch.manual_seed(0)
    method = cls(tiny_conv(), way=3, inner_steps=2, inner_lr=0.2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert method.resolved_strategy(torch.device("cpu")) == "threads"  # auto on a multi-core CPU
        results = {}
        for strategy in ("loop", "threads"):
            method.strategy = strategy
            results[strategy] = (method.meta_gradients(ep), method(ep.support, ep.support_labels, ep.query))
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    (a, pa), (b, pb) = results["loop"], results["threads"]
    torch.testing.assert_close(a.loss, b.loss)
    torch.testing.assert_close(pa, pb)
    for n in a.grads:
        torch.testing.assert_close(a.grads[n], b.grads[n], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls", [MAML, Reptile])
def test_bf16_meta_gradients_are_close_to_fp32_and_autocast_reaches_the_worker_threads(cls):
    ep = image_episode(T=4, way=3)
    torch.manual_seed(0)
    method = cls(Conv4(hidden=16, depth=2, track_running_stats=False, image_size=8), way=3, inner_lr=0.2)
    method.strategy = "loop"
    fp32 = method.meta_gradients(ep)
    method.precision = "bf16"
    results = {}
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for strategy in ("loop", "threads"):
            method.strategy = strategy
            results[strategy] = method.meta_gradients(ep)
    finally:
        torch.set_num_threads(before)
    bf16 = results["loop"]
    flat = lambda r: torch.cat([r.grads[n].flatten() for n in sorted(r.grads)])  # noqa: E731
    cosine = F.cosine_similarity(flat(bf16), flat(fp32), dim=0)
    assert bf16.loss.dtype == bf16.logits.dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in bf16.grads.values())
    assert 0.97 < cosine < 1 - 1e-7, cosine  # close, and really computed in bf16
    assert abs(bf16.loss - fp32.loss) < 0.1 * fp32.loss
    # each worker thread entered autocast itself: the threads land on the loop's bf16 numbers (up to
    # bf16 rounding of reductions split differently across threads), not on the fp32 ones
    threads = flat(results["threads"])
    assert (threads - flat(bf16)).norm() < 0.25 * (threads - flat(fp32)).norm()
    assert method.hparams()["precision"] == "bf16"


def test_pure_forward_equals_the_module_and_unknown_layers_fall_back_to_the_loop():
    x = torch.randn(6, 1, 8, 8)
    for net in (tiny_conv(), tiny_conv(downsample="stride")):
        params = dict(net.named_parameters())
        torch.testing.assert_close(pure_forward(net, params, x), net(x))
    odd = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Tanh())
    odd.out_dim = 8
    assert supports_pure_forward(tiny_conv()) and not supports_pure_forward(odd)
    method = MAML(odd, way=3, strategy="threads")
    assert method.resolved_strategy(torch.device("cpu")) == "loop"
    ep = image_episode(T=2, way=3)
    assert method.meta_gradients(ep).logits.shape == (2, 12, 3)


def test_anil_adapts_only_the_head_and_metasgd_learns_its_rates():
    ep = image_episode(T=2, way=3)
    torch.manual_seed(0)
    anil = ANIL(tiny_conv(), way=3)
    assert all(n.startswith("head.") for n in anil.adapted_names(dict(anil.named_parameters())))
    assert any(g.abs().sum() > 0 for n, g in anil.meta_gradients(ep).grads.items() if n.startswith("backbone."))
    msgd = MetaSGD(tiny_conv(), way=3, inner_lr=0.1)
    lrs = [p for n, p in msgd.named_parameters() if n.startswith("lrs.")]
    assert len(lrs) == len(msgd.lr_names) and all(torch.all(p == 0.1) for p in lrs)
    grads = msgd.meta_gradients(ep).grads
    assert all(grads[f"lrs.{i}"].abs().sum() > 0 for i in range(len(lrs)))


def test_reptile_meta_gradient_is_theta_minus_mean_adapted_weights():
    ep = image_episode(T=2, way=3)
    torch.manual_seed(0)
    method = Reptile(tiny_conv(), way=3, inner_steps=3, inner_lr=0.1)
    params = dict(method.named_parameters())
    grads = method.meta_gradients(ep).grads
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for t in range(2):
        tasks = method.prepare(ep.support[t], ep.support_labels[t], ep.query[t], ep.query_labels[t])
        x = torch.cat([tasks[0][0], tasks[2][0]])
        y = torch.cat([tasks[1][0], tasks[3][0]])
        fast = {n: p.detach().clone() for n, p in params.items()}
        for _ in range(3):  # plain SGD steps through an ordinary autograd loop
            fast = {n: w.requires_grad_(True) for n, w in fast.items()}
            loss = F.cross_entropy(method.logits(fast, x), y)
            g = dict(zip(fast, torch.autograd.grad(loss, list(fast.values()))))
            fast = {n: (w - 0.1 * g[n]).detach() for n, w in fast.items()}
        for n in params:
            expected[n] += (params[n].detach() - fast[n]) / 2
    for n in params:
        torch.testing.assert_close(grads[n], expected[n], rtol=1e-4, atol=1e-6)
    # the surrogate loss hands exactly this gradient to the optimizer
    loss, _ = method.loss(ep)
    loss.backward()
    for n, p in method.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-6)


def test_inner_batches_take_the_classes_in_turn_and_walk_through_the_items():
    from kshot.images.methods.gradient import interleave_classes

    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert interleave_classes(labels, 3).tolist() == [0, 3, 6, 1, 4, 7, 2, 5, 8]
    assert interleave_classes(torch.tensor([1, 0, 1, 0]), 2).tolist() == [1, 0, 3, 2]
    # Reptile with inner_batch=4 on 3 classes x 4 items: step i uses interleaved items 4i .. 4i+3 (mod 12)
    ep = image_episode(T=1, way=3, shot=1, query=3)
    torch.manual_seed(0)
    method = Reptile(tiny_conv(), way=3, inner_steps=4, inner_lr=0.1, inner_batch=4)
    params = dict(method.named_parameters())
    grads = method.meta_gradients(ep).grads
    tasks = method.prepare(*(t[0] for t in ep.astuple()[:4]))
    x, y = torch.cat([tasks[0][0], tasks[2][0]]), torch.cat([tasks[1][0], tasks[3][0]])
    order = interleave_classes(y, 3)
    x, y = x[order], y[order]
    assert y.tolist() == [0, 1, 2] * 4
    fast = {n: p.detach().clone() for n, p in params.items()}
    for step in range(4):
        index = [(4 * step + j) % 12 for j in range(4)]
        fast = {n: w.requires_grad_(True) for n, w in fast.items()}
        loss = F.cross_entropy(method.logits(fast, x[index]), y[index])
        g = dict(zip(fast, torch.autograd.grad(loss, list(fast.values()))))
        fast = {n: (w - 0.1 * g[n]).detach() for n, w in fast.items()}
    for n in params:
        torch.testing.assert_close(grads[n], params[n].detach() - fast[n], rtol=1e-4, atol=1e-6)
    # a full-batch run is a different update: the option really changes the inner loop
    full = Reptile(tiny_conv(), way=3, inner_steps=4, inner_lr=0.1)
    full.load_state_dict(method.state_dict())
    assert not torch.allclose(full.meta_gradients(ep).grads["head.weight"], grads["head.weight"])


def test_inner_batches_in_regression_keep_the_order():
    ep = sinusoid_tasks(2, 6, 4, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    batched = MAML(sinusoid_net(), way=1, loss="mse", inner_steps=1, inner_lr=0.01, inner_batch=3)
    full = MAML(sinusoid_net(), way=1, loss="mse", inner_steps=1, inner_lr=0.01)
    full.load_state_dict(batched.state_dict())
    # one step on the first 3 items of each task = one full-batch step on those 3 items only
    half = Episode(ep.support[:, :3], ep.support_labels[:, :3], ep.query, ep.query_labels, ep.classes)
    a, b = batched.meta_gradients(ep), full.meta_gradients(half)
    torch.testing.assert_close(a.loss, b.loss)
    for n in a.grads:
        torch.testing.assert_close(a.grads[n], b.grads[n])
    assert not torch.allclose(full.meta_gradients(ep).loss, a.loss)


def test_sgd_with_the_reptile_meta_gradient_is_the_reptile_update():
    ep = image_episode(T=2, way=3)
    torch.manual_seed(0)
    method = Reptile(tiny_conv(), way=3, inner_steps=2, inner_lr=0.1)
    before = {n: p.detach().clone() for n, p in method.named_parameters()}
    grads = method.meta_gradients(ep).grads
    adapted_mean = {n: before[n] - grads[n] for n in before}  # theta - mean(adapted) = meta-gradient
    optimizer = torch.optim.SGD(method.parameters(), lr=0.25)
    loss, _ = method.loss(ep)
    loss.backward()
    optimizer.step()
    for n, p in method.named_parameters():  # theta + eps (mean(adapted) - theta)
        torch.testing.assert_close(p.detach(), before[n] + 0.25 * (adapted_mean[n] - before[n]), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls", [MAML, Reptile])
def test_non_transductive_prediction_keeps_test_items_apart(cls):
    ep = image_episode(T=1, way=3, shot=2, query=4)
    support, labels, query = (t[0] for t in ep.astuple()[:3])
    torch.manual_seed(0)
    method = cls(tiny_conv(), way=3, test_inner_steps=2)
    inductive = cls(tiny_conv(), way=3, test_inner_steps=2, transductive=False)
    inductive.load_state_dict(method.state_dict())
    out = inductive(support, labels, query)
    assert out.shape == (12, 3)
    # item 0's logits do not depend on the other query items (they do in the transductive protocol)
    other = query.clone()
    other[1:] = 3 * torch.randn_like(other[1:])
    torch.testing.assert_close(inductive(support, labels, other)[0], out[0])
    assert not torch.allclose(method(support, labels, other)[0], method(support, labels, query)[0])
    # and equal the adapted network on the support set plus that one item
    params = {n: p.detach() for n, p in method.named_parameters()}
    fast = method.adapt(params, support, labels, 2, True)
    with torch.no_grad():
        expected = method.logits(fast, torch.cat([support, query[3:4]]))[-1]
    torch.testing.assert_close(out[3], expected, rtol=1e-4, atol=1e-5)
    assert inductive.hparams()["transductive"] is False


# ---- learning: the sinusoid problem of Finn et al. 2017 ---------------------------------------------


def sinusoid_tasks(T, shots, queries, gen):
    """T regression tasks y = A sin(x - phase), A in [0.1, 5], phase in [0, pi], x in [-5, 5]."""
    amp = torch.empty(T, 1).uniform_(0.1, 5.0, generator=gen)
    phase = torch.empty(T, 1).uniform_(0, math.pi, generator=gen)
    x = torch.empty(T, shots + queries).uniform_(-5, 5, generator=gen)
    y = amp * torch.sin(x - phase)
    return Episode(x[:, :shots, None], y[:, :shots], x[:, shots:, None], y[:, shots:], torch.zeros(T, 1))


def sinusoid_net():
    """Finn et al.'s 1-40-40 ReLU network (the head adds the output): any nn.Module with out_dim works."""
    net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU())
    net.out_dim = 40
    return net


def test_maml_beats_joint_pretraining_on_sinusoids():
    gen = torch.Generator().manual_seed(0)
    kw = dict(way=1, loss="mse", inner_lr=0.01, inner_steps=1, test_inner_steps=10, strategy="vmap")
    torch.manual_seed(0)
    maml = MAML(sinusoid_net(), **kw)
    opt = torch.optim.Adam(maml.parameters(), lr=3e-3)
    for _ in range(600):
        loss, _ = maml.loss(sinusoid_tasks(10, 10, 10, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    pretrained = MAML(sinusoid_net(), **kw)  # same network and fine-tuning, trained on all tasks jointly
    opt = torch.optim.Adam(pretrained.parameters(), lr=3e-3)
    for _ in range(600):
        ep = sinusoid_tasks(10, 10, 10, gen)
        x, y = torch.cat([ep.support, ep.query], 1), torch.cat([ep.support_labels, ep.query_labels], 1)
        out = pretrained.logits(dict(pretrained.named_parameters()), x.reshape(-1, 1))
        loss = F.mse_loss(out.squeeze(-1), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = sinusoid_tasks(200, 5, 50, torch.Generator().manual_seed(123))  # 5-shot

    def mse(method, steps):
        method.test_inner_steps = steps
        return F.mse_loss(method(test.support, test.support_labels, test.query).squeeze(-1), test.query_labels).item()

    maml_mse = mse(maml, 10)
    pretrained_mse = min(mse(pretrained, steps) for steps in (0, 1, 10))  # its best number of steps
    assert maml_mse < 0.7 * pretrained_mse, (maml_mse, pretrained_mse)
    assert mse(maml, 10) < mse(maml, 0)  # adaptation is what helps


# ---- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        ({"inner_steps": -1}, "inner_steps must be an integer >= 0, got -1"),
        ({"test_inner_steps": -2}, "test_inner_steps must be an integer >= 0, got -2"),
        ({"inner_lr": float("nan")}, "inner_lr must be a finite number > 0, got nan"),
        ({"inner_lr": float("inf")}, "inner_lr must be a finite number > 0, got inf"),
        ({"inner_lr": 0}, "inner_lr must be a finite number > 0, got 0"),
        ({"strategy": "processes"}, "unknown strategy 'processes'"),
        ({"compile": "yes"}, "compile must be true or false, got 'yes'"),
        ({"precision": "fp16"}, "unknown precision 'fp16'"),
        ({"inner_batch": 0}, "inner_batch must be an integer >= 1, got 0"),
        ({"transductive": "no"}, "transductive must be true or false, got 'no'"),
    ],
)
def test_bad_parameters_are_named(params, match):
    with pytest.raises(KshotError, match=match):
        MAML(tiny_conv(), **params)


def test_running_batchnorm_statistics_are_refused_with_the_fix():
    with pytest.raises(KshotError, match="track_running_stats=False"):
        MAML(Conv4(hidden=4, depth=2, image_size=8))
    with pytest.raises(KshotError, match="track_running_stats=False"):
        build_method("maml", (1, 8, 8), "conv4", {"track_running_stats": True, "hidden": 4, "depth": 2})
    assert not build_method("anil", (1, 8, 8), "conv4", {"hidden": 4, "depth": 2}).backbone[0][1].track_running_stats


def test_more_classes_than_the_head_is_an_error_fewer_is_fine():
    method = MAML(tiny_conv(), way=3)
    ep = image_episode(T=1, way=4)
    with pytest.raises(KshotError, match="way=3 .* 4 classes; train with way=4"):
        method.meta_gradients(ep)
    assert method(*(t[0] for t in image_episode(T=1, way=2).astuple()[:3])).shape == (8, 2)


# ---- training, checkpoints, CLI ---------------------------------------------------------------------


def blobs(split, n_classes=10, per_class=8):
    g = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
    centers = 2 * torch.randn(n_classes, 1, 8, 8, generator=g)
    items = centers.repeat_interleave(per_class, 0) + 0.5 * torch.randn(n_classes * per_class, 1, 8, 8, generator=g)
    return LabeledData(
        items,
        np.repeat(np.arange(n_classes), per_class),
        [f"c{i}" for i in range(n_classes)],
        name="blobs",
        split=split,
    )


def small_config(method, **kw):
    return TrainConfig(
        method=method,
        dataset="blobs",
        way=3,
        shot=1,
        query=2,
        episodes=8,
        meta_batch=2,
        val_way=3,
        val_query=2,
        val_every=4,
        val_episodes=6,
        lr=1e-3,
        backbone_params={"hidden": 4, "depth": 2},
        method_params={"way": 3},
        **kw,
    )


@pytest.mark.parametrize("method", ["maml", "fomaml", "anil", "metasgd", "reptile"])
def test_meta_train_and_load_round_trip(tmp_path, method):
    summary = meta_train(
        small_config(method), tmp_path / method, progress=False, train_data=blobs("train"), val_data=blobs("val")
    )
    assert summary["episodes"] == 8 and len(summary["history"]) == 2
    loaded, meta = load_method(tmp_path / method, "last")
    assert type(loaded) is METHODS[method] and meta["method_params"]["way"] == 3
    test = blobs("test")
    ep = EpisodeSampler(test.labels, 3, 1, 2, seed=0).episode(test.items, 0)
    torch.manual_seed(0)
    fresh = build_method(method, (1, 8, 8), "conv4", {"hidden": 4, "depth": 2}, way=3)
    fresh.load_state_dict(loaded.state_dict())
    torch.testing.assert_close(
        loaded(ep.support, ep.support_labels, ep.query), fresh(ep.support, ep.support_labels, ep.query)
    )


def test_nan_loss_stops_training_naming_the_step_and_keeps_the_checkpoint(tmp_path):
    data = blobs("train")
    meta_train(small_config("maml"), tmp_path, progress=False, train_data=data, val_data=blobs("val"))
    before = (tmp_path / "last.safetensors").read_bytes()
    bad = LabeledData(data.items.clone(), data.labels, data.class_names, name="blobs")
    bad.items[:] = float("nan")
    cfg = small_config("maml", seed=0)
    cfg.episodes = 16
    with pytest.raises(TrainingError, match=r"loss became nan at episode 9 \(iteration 5\)"):
        meta_train(cfg, tmp_path, resume=True, progress=False, train_data=bad, val_data=blobs("val"))
    assert (tmp_path / "last.safetensors").read_bytes() == before


def test_cli_flags_and_exit_codes(tmp_path, capsys, monkeypatch):
    import kshot.images.training as training

    monkeypatch.setattr(training, "load_split", lambda config, split: blobs(split))
    run, config = tmp_path / "run", tmp_path / "small.json"
    config.write_text('{"backbone_params": {"hidden": 4, "depth": 2}, "val_query": 2}')
    code = main(
        [
            "train",
            "--out",
            str(run),
            "--config",
            str(config),
            "--method",
            "maml",
            "--dataset",
            "blobs",
            "--way",
            "3",
            "--shot",
            "1",
            "--query",
            "2",
            "--episodes",
            "4",
            "--meta-batch",
            "2",
            "--val-way",
            "3",
            "--val-episodes",
            "4",
            "--inner-steps",
            "2",
            "--inner-lr",
            "0.3",
            "--test-inner-steps",
            "3",
            "-p",
            "strategy=loop",
            "-p",
            "precision=bf16",
            "-b",
            "downsample=stride",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert all(
        "way" in inspect.signature(METHODS[m]).parameters for m in ("maml", "fomaml", "anil", "metasgd", "reptile")
    )
    method, meta = load_method(run)
    assert (method.way, method.inner_steps, method.inner_lr, method.test_inner_steps) == (3, 2, 0.3, 3)
    assert method.precision == "bf16"
    assert meta["backbone_params"] == {"hidden": 4, "depth": 2, "downsample": "stride"}
    assert method.backbone[0][0].stride == (2, 2)
    capsys.readouterr()
    small = ["--config", str(config), "--dataset", "blobs", "--way", "3", "--val-way", "3", "--no-progress"]
    code = main(["train", "--out", str(tmp_path / "bad"), "--method", "maml", "--inner-steps", "-1", *small])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "inner_steps must be an integer >= 0, got -1" in err
    code = main(["train", "--out", str(tmp_path / "bad2"), "--method", "fomaml", "--inner-lr", "nan", *small])
    err = capsys.readouterr().err
    assert code == 2 and "inner_lr must be a finite number > 0, got nan" in err
    code = main(["train", "--out", str(tmp_path / "bad3"), "--method", "maml", "-b", "downsample=avg", *small])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unknown downsample 'avg'; choose one of: maxpool, stride" in err
    code = main(["train", "--out", str(tmp_path / "bad4"), "--method", "reptile", "--optimizer", "rmsprop", *small])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unknown optimizer 'rmsprop'; choose one of: adam, sgd" in err
    assert not (tmp_path / "bad4").exists()
    # Reptile's own protocol: SGD outer step annealed linearly, inner mini-batches, non-transductive test
    code = main(
        [
            "train",
            "--out",
            str(tmp_path / "reptile"),
            "--method",
            "reptile",
            "--shot",
            "1",
            "--query",
            "3",
            "--episodes",
            "4",
            "--meta-batch",
            "2",
            "--optimizer",
            "sgd",
            "--lr",
            "1.0",
            "--lr-schedule",
            "linear",
            "-p",
            "inner_batch=3",
            "--val-episodes",
            "4",
            *small,
        ]
    )
    assert code == 0, capsys.readouterr().err
    method, meta = load_method(tmp_path / "reptile")
    assert method.inner_batch == 3 and meta["config"]["optimizer"] == "sgd"
    assert meta["config"]["lr_schedule"] == "linear"
    capsys.readouterr()
    import kshot.data

    monkeypatch.setattr(kshot.data, "load_dataset", lambda name, split, root=None, **kw: blobs(split))
    code = main(
        [
            "eval",
            str(tmp_path / "reptile"),
            "--way",
            "3",
            "--query",
            "2",
            "--episodes",
            "4",
            "--json",
            "-p",
            "transductive=false",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and 0 <= json.loads(out)["accuracy"] <= 1


def test_vmap_gets_weights_in_the_default_layout_not_the_backbones_channels_last():
    # cuDNN's convolution backward clones channels-last weights to channels-last, which functorch cannot
    # batch (a crash of strategy="vmap" on an H200); a 1-channel weight counts as both layouts, so the
    # weights must be real default-layout copies
    method = MAML(tiny_conv(), way=3, inner_steps=1, strategy="vmap")
    first = dict(method.named_parameters())["backbone.0.0.weight"]
    assert first.shape[1] == 1 and first.stride() != first.clone(memory_format=torch.contiguous_format).stride()
    seen = {}

    def fn(params, x):
        seen.update({n: p.stride() for n, p in params.items() if p.dim() == 4})
        return x.sum()

    method.run_tasks(fn, (torch.zeros(2, 3),))
    want = {
        n: p.clone(memory_format=torch.contiguous_format).stride() for n, p in method.named_parameters() if p.dim() == 4
    }
    assert seen and seen == want
