"""Feature visualisation on a tiny hand-built model: objectives, parameterisations, transforms, the loop, the cache."""

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from layerscope.errors import LayerNotFoundError, LayerscopeError
from layerscope.featurevis import (
    IMAGE,
    LOGITS,
    DataImage,
    FourierImage,
    Objective,
    PixelImage,
    SpectrumImage,
    accentuate,
    activation,
    cached_featurevis,
    channel,
    class_logit,
    class_margin,
    compose,
    distance_to_data,
    diversity,
    high_frequency,
    image_prior,
    jitter,
    layer_featurevis,
    layer_units,
    neuron,
    random_rotate,
    random_scale,
    render,
    save_png,
    standard_transforms,
    total_variation,
    unit_activation,
    unit_featurevis,
    visualize,
)
from layerscope.featurevis.prior import high_frequency_share, ink_share
from layerscope.featurevis.render import start_similarity
from layerscope.run import Run


class Tiny(nn.Module):
    """(N, 1, 8, 8) -> conv (N, 4, 6, 6) -> fc (N, 5) -> out (N, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.ReLU())
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        return self.out(self.fc(self.conv(x)))


SHAPE = (1, 8, 8)


@pytest.fixture
def tiny():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return Tiny()


def _measure(model, objective, param):
    """The objective on the parameterised image as it is now (a render of zero steps)."""
    return render(model, objective, param, steps=0).final


# -- objectives ---------------------------------------------------------------------------------------------------


@pytest.fixture
def outputs():
    conv = torch.arange(2 * 3 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3, 3)  # (B, C, H, W)
    dense = torch.tensor([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])  # (B, D)
    return {"conv": conv, "dense": dense, LOGITS: dense * 10}


def test_unit_objectives_on_a_fixed_tensor_dict(outputs):
    conv = outputs["conv"]
    torch.testing.assert_close(channel("conv", 1)(outputs), conv[:, 1].mean((1, 2)))
    torch.testing.assert_close(channel("dense", 2)(outputs), torch.tensor([3.0, -6.0]))
    torch.testing.assert_close(neuron("conv", 2)(outputs), conv[:, 2, 1, 1])  # the centre by default
    torch.testing.assert_close(neuron("conv", 2, y=0, x=2)(outputs), conv[:, 2, 0, 2])
    torch.testing.assert_close(neuron("dense", 0)(outputs), torch.tensor([1.0, 4.0]))
    torch.testing.assert_close(class_logit(1)(outputs), torch.tensor([-20.0, 50.0]))
    torch.testing.assert_close(activation("conv", 0)(outputs), conv[:, 0].amax((1, 2)))


def test_objectives_compose(outputs):
    a, b = channel("dense", 0), channel("dense", 2)
    va, vb = a(outputs), b(outputs)
    torch.testing.assert_close((a + b)(outputs), va + vb)
    torch.testing.assert_close((a - b)(outputs), va - vb)
    torch.testing.assert_close((2 * a)(outputs), 2 * va)
    torch.testing.assert_close((a * 2.0)(outputs), 2 * va)
    torch.testing.assert_close((a / 4)(outputs), va / 4)
    torch.testing.assert_close((-a)(outputs), -va)
    torch.testing.assert_close((a + 1.5)(outputs), va + 1.5)
    torch.testing.assert_close((1.0 - a)(outputs), 1.0 - va)
    torch.testing.assert_close(sum([a, b, a])(outputs), 2 * va + vb)
    torch.testing.assert_close(Objective.sum([a, b, a])(outputs), 2 * va + vb)
    mixed = channel("conv", 0) - 0.5 * class_logit(2)
    assert set(mixed.layers) == {"conv", LOGITS}
    assert "channel(conv, 0)" in mixed.name


def test_one_unit_per_batch_element(outputs):
    conv = outputs["conv"]
    torch.testing.assert_close(channel("dense", [2, 0])(outputs), torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(
        channel("conv", torch.tensor([2, 0]))(outputs), torch.stack([conv[0, 2].mean(), conv[1, 0].mean()])
    )
    with pytest.raises(LayerscopeError, match="one per element"):
        channel("dense", [0, 1, 2])(outputs)


def test_unit_activation_is_the_neuron_or_the_channels_spatial_max(outputs):
    conv, dense = outputs["conv"], outputs["dense"]
    torch.testing.assert_close(unit_activation(dense, 1), dense[:, 1])
    torch.testing.assert_close(unit_activation(conv, 2), conv[:, 2].flatten(1).amax(1))
    torch.testing.assert_close(unit_activation(conv), conv.flatten(2).amax(2))  # (N, C): every unit
    torch.testing.assert_close(unit_activation(conv, [1, 0]), torch.stack([conv[0, 1].max(), conv[1, 0].max()]))
    torch.testing.assert_close(unit_activation(dense, np.int64(2)), dense[:, 2])


def test_diversity_and_penalties():
    same = {"x": torch.ones(3, 2, 4, 4)}
    torch.testing.assert_close(diversity("x")(same), -torch.ones(3))  # identical Gram matrices: cosine 1
    torch.testing.assert_close(diversity("x", groups=[0, 1, 2])(same), torch.zeros(3))  # nobody to compare with
    flat = {IMAGE: torch.full((2, 1, 8, 8), 0.3)}
    torch.testing.assert_close(total_variation()(flat), torch.zeros(2))
    torch.testing.assert_close(high_frequency()(flat), torch.zeros(2), atol=1e-6, rtol=0)
    stripes = torch.zeros(2, 1, 8, 8)
    stripes[..., ::2] = 1.0
    assert (total_variation()({IMAGE: stripes}) > 0.9).all()
    assert (high_frequency()({IMAGE: stripes}) > 0.1).all()


# -- parameterisations and transforms -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 9, 7)])
def test_fourier_image_is_the_inverse_real_fft_through_a_sigmoid(shape):
    p = FourierImage(shape, batch=2, sd=1.0, seed=3)
    expected = torch.fft.irfftn(torch.view_as_complex(p.scale * p.spectrum), s=shape[1:], dim=(-2, -1), norm="ortho")
    image = p()
    assert image.shape == (2, *shape) and image.dtype == torch.float32
    torch.testing.assert_close(image, torch.sigmoid(expected / FourierImage.MAGIC))


def test_parameterisations_are_seeded_and_valid():
    for make in (PixelImage, FourierImage):
        a, b, c = make(SHAPE, 3, seed=1)(), make(SHAPE, 3, seed=1)(), make(SHAPE, 3, seed=2)()
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert a.shape == (3, *SHAPE) and 0 < a.min() and a.max() < 1


@pytest.mark.parametrize("t", [jitter(2), random_scale(0.9, 1.1), random_rotate(10), standard_transforms()], ids=repr)
def test_transforms_keep_shape_and_dtype_and_are_seeded(t):
    x = torch.rand(3, 1, 28, 28)
    out = t(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    again = t(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    draws = [t(x, torch.Generator().manual_seed(s)) for s in range(1, 6)]
    assert any(not torch.equal(out, d) for d in draws)


def test_transforms_fill_the_uncovered_border():
    x = torch.ones(1, 1, 10, 10)
    shifted = jitter(3, fill=0.25)(x, torch.Generator().manual_seed(0))
    assert set(shifted.unique().tolist()) <= {0.25, 1.0}
    shrunk = random_scale(0.5, 0.5, fill=0.25)(x)
    assert shrunk[0, 0, 0, 0] == pytest.approx(0.25) and shrunk[0, 0, 5, 5] == pytest.approx(1.0)
    identity = compose(random_scale(1.0, 1.0), random_rotate(0.0))
    y = torch.rand(2, 3, 6, 9)
    torch.testing.assert_close(identity(y), y, atol=1e-5, rtol=0)


# -- the optimisation loop ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [PixelImage, FourierImage])
@pytest.mark.parametrize("objective", [channel("conv", 1), neuron("fc", 2), class_logit(0)], ids=repr)
def test_objective_improves_after_a_few_steps(tiny, make, objective):
    before = _measure(tiny, objective, make(SHAPE, 2, seed=0))
    result = render(tiny, objective, make(SHAPE, 2, seed=0), transforms=jitter(1), steps=8)
    assert (result.final > before).all()
    assert result.history.shape == (8,) and result.images.shape == (2, *SHAPE)
    assert result.images.dtype == np.float32 and 0 <= result.images.min() and result.images.max() <= 1


def test_adam_matches_torch():
    from layerscope.featurevis.render import _Adam

    ours = torch.randn(3, 4, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_(True)
    a, b = _Adam([ours], lr=0.1), torch.optim.Adam([theirs], lr=0.1)
    for step in range(5):
        for p, opt in ((ours, a), (theirs, b)):
            opt.zero_grad()
            ((p - step) ** 3).sum().backward()
            opt.step()
    torch.testing.assert_close(ours, theirs)


def test_render_is_deterministic_and_reports_progress(tiny):
    calls = []
    kw = {"transforms": standard_transforms(), "steps": 6, "seed": 4}
    a = render(tiny, channel("conv", 0), PixelImage(SHAPE, 2, seed=4), progress=lambda *c: calls.append(c), **kw)
    b = render(tiny, channel("conv", 0), PixelImage(SHAPE, 2, seed=4), **kw)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.history, b.history)
    assert calls[0] == ("featurevis", 0, 6) and calls[-1] == ("featurevis", 6, 6) and len(calls) == 7
    tasks = []
    visualize(tiny, "conv", 0, image_shape=SHAPE, steps=2, progress=lambda t, d, n: tasks.append(t))
    visualize(tiny, "conv", 0, image_shape=SHAPE, steps=2, regularised=False, progress=lambda t, d, n: tasks.append(t))
    assert set(tasks) == {"featurevis conv", "featurevis conv naive"}


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())


def test_model_is_left_as_found(tiny):
    tiny.train()
    before = _state(tiny)
    threads = torch.get_num_threads()
    visualize(tiny, "conv", [0, 3], image_shape=SHAPE, steps=5, n_diverse=2)
    visualize(tiny, LOGITS, 1, image_shape=SHAPE, steps=5, regularised=False)
    assert tiny.training
    assert all(p.grad is None for p in tiny.parameters())
    for k, v in _state(tiny).items():
        assert torch.equal(v, before[k]), k
    assert _no_hooks(tiny)
    assert torch.get_num_threads() == threads


def test_model_is_left_as_found_when_the_objective_fails(tiny):
    tiny.train()

    def boom(outputs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        render(tiny, Objective(boom, ("conv",)), PixelImage(SHAPE), steps=3)
    assert tiny.training and _no_hooks(tiny)


def test_forward_stops_at_the_deepest_needed_layer(tiny):
    calls = []
    handle = tiny.out.register_forward_hook(lambda *a: calls.append("out"))
    try:
        render(tiny, channel("conv", 0), PixelImage(SHAPE), steps=2)
        assert calls == []
        render(tiny, class_logit(0), PixelImage(SHAPE), steps=2)
        assert calls
    finally:
        handle.remove()


def test_a_dead_unit_still_gets_a_gradient(tiny):
    with torch.no_grad():  # neuron 2 of fc: 0.2 below zero on the grey starting image
        pre = tiny.fc[1](tiny.conv(torch.full((1, *SHAPE), 0.5)).flatten(1))[0, 2]
        tiny.fc[1].bias[2] -= pre + 0.2
    target = neuron("fc", 2)
    plain = render(tiny, target, PixelImage(SHAPE), steps=30, lr=0.1, redirect_relu=False)
    redirected = render(tiny, target, PixelImage(SHAPE), steps=30, lr=0.1)
    assert plain.final[0] == 0 and (plain.history == 0).all()
    assert redirected.final[0] > 0


def test_in_place_relus_keep_their_gradient():
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.Conv2d(3, 2, 3), nn.ReLU(inplace=True))
    for target in (channel("1", 0), channel("3", 0)):  # the in-place ReLU itself, and a layer after one
        before = _measure(model, target, PixelImage(SHAPE))
        after = render(model, target, PixelImage(SHAPE), transforms=jitter(1), steps=10).final
        assert after[0] > before[0]
    dead = channel("3", 1)  # 0 on the grey start: the redirected gradient passes the in-place ReLUs
    assert _measure(model, dead, PixelImage(SHAPE))[0] == 0
    assert render(model, dead, PixelImage(SHAPE), steps=30, lr=0.1).final[0] > 0
    assert _no_hooks(model)


def test_visualize_shapes_and_settings(tiny):
    vis = visualize(tiny, "fc", [4, 1], image_shape=SHAPE, steps=4, n_diverse=2, restarts=2)
    assert vis.units == (4, 1)
    assert vis.images.shape == (2, 2, *SHAPE) and vis.activation.shape == (2, 2)
    assert vis.settings["diversity_layer"] == "conv" and vis.settings["restarts"] == 2
    every = visualize(tiny, "out", image_shape=SHAPE, steps=2, regularised=False)
    assert every.units == (0, 1, 2) and every.settings["transforms"] is None
    assert layer_units(tiny, "conv", SHAPE) == ("conv", 4)
    assert layer_units(tiny, LOGITS, SHAPE) == ("dense", 3)


def test_visualize_reports_the_activation_of_the_returned_image(tiny):
    vis = visualize(tiny, "conv", [1, 2], image_shape=SHAPE, steps=6)
    with torch.no_grad():
        conv = tiny.conv(torch.from_numpy(vis.images[:, 0]))
    np.testing.assert_allclose(vis.activation[:, 0], unit_activation(conv, [1, 2]).numpy(), rtol=1e-5)


class Tokens(nn.Module):
    """(N, 1, 8, 8) -> ``embed`` (N, 4 tokens, 6) -> ``mix`` (N, 4, 6) -> mean over tokens -> ``out`` (N, 3): a
    transformer's token layers, whose (tokens, dim) outputs a Run stores flattened as 24 dense units."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(16, 6)
        self.mix = nn.Linear(6, 6)
        self.out = nn.Linear(6, 3)

    def tokens(self, x):
        patches = x.unfold(2, 4, 4).unfold(3, 4, 4).reshape(len(x), 4, 16)  # (N, 4 patches, 16 pixels)
        return self.mix(self.embed(patches))  # (N, 4, 6)

    def forward(self, x):
        return self.out(torch.tanh(self.tokens(x)).mean(1))


def test_token_layers_count_units_as_the_run_does():
    """A (N, tokens, dim) output is a dense layer of tokens * dim units everywhere, as the Run's activations and
    top-k number them: unit 23 is token 3's last feature, not "channel" 23 of 4 (which used to be out of range)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Tokens()
    out = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    torch.testing.assert_close(unit_activation(out, 23), out[:, 3, 5])
    torch.testing.assert_close(unit_activation(out), out.flatten(1))
    torch.testing.assert_close(neuron("mix", 7)({"mix": out.flatten(1)}), out[:, 1, 1])
    assert layer_units(model, "mix", SHAPE) == ("dense", 24)
    vis = visualize(model, "mix", [0, 23], image_shape=SHAPE, steps=4)
    with torch.no_grad():
        reached = model.tokens(torch.from_numpy(vis.images[:, 0])).flatten(1)  # (units, 4 * 6)
    np.testing.assert_allclose(vis.activation[:, 0], [reached[0, 0], reached[1, 23]], rtol=1e-5)
    acc = accentuate(model, "mix", 23, np.full(SHAPE, 0.5, np.float32), steps=8)
    assert acc.activation > acc.start_activation


def test_bad_layers_and_units(tiny):
    with pytest.raises(LayerNotFoundError, match=r"unknown layer 'fc3'.*Hint"):
        visualize(tiny, "fc3", 0, image_shape=SHAPE, steps=1)
    with pytest.raises(LayerscopeError, match="'input' is the image itself"):
        visualize(tiny, "input", 0, image_shape=SHAPE, steps=1)
    with pytest.raises(LayerscopeError, match=r"unit 4 is out of range for layer 'conv': it has 4 units, 0 to 3"):
        visualize(tiny, "conv", [0, 4], image_shape=SHAPE, steps=1)
    with pytest.raises(LayerscopeError, match="out of range"):
        visualize(tiny, "fc", -1, image_shape=SHAPE, steps=1)


# -- the cache in a Run, and PNGs ---------------------------------------------------------------------------------


def test_unit_featurevis_is_cached_in_the_run(tiny_run):
    run = Run(tiny_run.path)
    calls = []
    assert cached_featurevis(run, "conv2", 3, steps=4) is None
    first = unit_featurevis(run, "conv2", 3, steps=4, progress=lambda *c: calls.append(c))
    path = run.path / "featurevis" / "conv2" / "3.npz"
    assert path.is_file() and calls
    assert first.images.shape == (1, 1, 28, 28) and first.naive.shape == (1, 28, 28)
    assert first.activation.shape == (1,) and first.settings["steps"] == 4
    with zipfile.ZipFile(path) as z:  # plain arrays only, nothing pickled
        assert sorted(z.namelist()) == sorted(
            f"{k}.npy" for k in ("images", "naive", "activation", "naive_activation", "settings", "accent")
        )
    trust = first.trust  # the tiny Run has top-k: the top image is accentuated and the best activation known
    assert trust["dataset_max"] == pytest.approx(float(run.topk("conv2").values[3, 0]))
    assert trust["accent_from"] == int(run.topk("conv2").indices[3, 0]) and first.accent.shape == (1, 28, 28)
    assert trust["start_similarity"] is not None and isinstance(trust["far"], bool)
    mtime = path.stat().st_mtime_ns
    calls.clear()
    second = unit_featurevis(run, "conv2", 3, steps=4, progress=lambda *c: calls.append(c))
    assert calls == [] and path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(cached_featurevis(run, "conv2", 3, steps=4).images, first.images)
    assert cached_featurevis(run, "conv2", 3, steps=5) is None  # made with other settings
    np.testing.assert_array_equal(second.naive, first.naive)
    assert second.naive_activation == first.naive_activation
    assert second.settings == first.settings

    unit_featurevis(run, "conv2", 3, steps=5, progress=lambda *c: calls.append(c))  # other settings: recomputed
    assert calls
    calls.clear()
    path.write_bytes(b"not a zip file")  # unreadable: recomputed, not an error
    unit_featurevis(run, "conv2", 3, steps=5, progress=lambda *c: calls.append(c))
    assert calls and np.load(path, allow_pickle=False)["images"].shape == (1, 1, 28, 28)


def test_unit_featurevis_refuses_the_input_and_bad_units(tiny_run):
    run = Run(tiny_run.path)
    with pytest.raises(LayerscopeError, match="'input' is the input image"):
        unit_featurevis(run, "input", 0)
    with pytest.raises(LayerscopeError, match=r"unit 64 is out of range for layer 'fc1': it has 64 units, 0 to 63"):
        unit_featurevis(run, "fc1", 64)
    with pytest.raises(LayerNotFoundError, match="unknown layer 'fc9'"):
        unit_featurevis(run, "fc9", 0)


def test_save_png_enlarges_and_lays_images_side_by_side(tmp_path):
    images = np.zeros((2, 1, 28, 28), np.float32)
    images[1] = 1.0
    path = save_png(images, tmp_path / "out" / "u.png", scale=8)
    with Image.open(path) as im:
        assert im.mode == "L" and im.size == ((2 * 28 + 1) * 8, 28 * 8)
        pixels = np.asarray(im)
    assert pixels[:, : 28 * 8].max() == 0 and pixels[:, 29 * 8 :].min() == 255
    assert pixels[0, 28 * 8] == 128  # the grey gap
    rows = save_png(np.random.default_rng(0).random((2, 3, 3, 5, 5)), tmp_path / "rgb.png", scale=2)
    with Image.open(rows) as im:
        assert im.mode == "RGB" and im.size == ((3 * 5 + 2) * 2, (2 * 5 + 1) * 2)
    with pytest.raises(LayerscopeError, match="C = 1 or 3"):
        save_png(np.zeros((2, 28, 28)), tmp_path / "bad.png")


# -- the data's statistics: the prior, data-drawn parameterisations, accentuation -------------------------------------


def _strokes(n=200, size=8, seed=0):
    """(n, 1, size, size) uint8 images: one bright horizontal or vertical bar each on black, as tiny 'digits'."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, size, size), np.uint8)
    for i in range(n):
        k = rng.integers(1, size - 1)
        if i % 2:
            images[i, 0, k, 1:-1] = 255
        else:
            images[i, 0, 1:-1, k] = 255
    return images


def test_ink_and_high_frequency_shares_of_known_images():
    black = np.zeros((1, 1, 8, 8), np.float32)
    checker = (np.indices((8, 8)).sum(0) % 2).astype(np.float32)[None, None]  # the highest frequency there is
    yy, xx = np.indices((8, 8)) - 3.5
    blob = np.exp(-(yy**2 + xx**2) / 8).astype(np.float32)[None, None]  # smooth
    assert ink_share(black)[0] == 0 and ink_share(checker)[0] == 0.5
    assert high_frequency_share(checker)[0] == pytest.approx(1.0)
    assert high_frequency_share(blob)[0] < 0.05
    assert ink_share(np.full((1, 8, 8), 255, np.uint8))[0] == 1  # uint8 is read as 0-255


def test_image_prior_estimates_mean_covariance_and_statistics():
    images = _strokes()
    prior = image_prior(images)
    x = images.astype(np.float32) / 255
    np.testing.assert_allclose(prior.mean, x.mean(0), atol=1e-6)
    cov = np.cov(x.reshape(len(x), -1).T)
    np.testing.assert_allclose(prior.eigenvalues, np.sort(np.linalg.eigvalsh(cov))[::-1].clip(0), atol=1e-5)
    assert prior.shape == (1, 8, 8) and prior.n_images == 200 and prior.has_covariance
    assert prior.ink_share == pytest.approx(float(np.median(ink_share(x))))
    np.testing.assert_allclose(prior.magnitude, np.abs(np.fft.rfft2(x, norm="ortho")).mean(0), atol=1e-5)
    assert image_prior(images, sample=50).n_images == 50
    far = distance_to_data(np.random.default_rng(0).random((4, 1, 8, 8)), prior)
    assert far["far"] and far["ink_ratio"] > 1.5
    assert not distance_to_data(x[:50], prior)["far"]


def test_image_prior_of_fewer_colour_images_than_pixels_is_their_covariances_full_basis():
    """12 RGB images of 4 x 4 (48 pixels): the covariance has rank 11; its eigenvalues and eigenvectors come from the
    images' SVD (fast where eigh of the pixel covariance took 5-30 s for 3 x 32 x 32), completed to an orthonormal
    basis that still holds every image, seen or not."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(13, 3, 4, 4), dtype=np.uint8)
    prior = image_prior(images[:12])
    x = images[:12].astype(np.float64).reshape(12, -1) / 255
    cov = np.cov(x.T)  # (48, 48)
    assert prior.shape == (3, 4, 4) and prior.has_covariance and prior.eigenvectors.shape == (48, 48)
    np.testing.assert_allclose(prior.eigenvalues, np.sort(np.linalg.eigvalsh(cov))[::-1].clip(0), atol=1e-6)
    assert (np.diff(prior.eigenvalues) <= 0).all() and (prior.eigenvalues[11:] < 1e-12).all()
    vectors = prior.eigenvectors.astype(np.float64)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(48), atol=1e-5)
    np.testing.assert_allclose(vectors @ np.diag(prior.eigenvalues) @ vectors.T, cov, atol=1e-6)
    unseen = images[12:].astype(np.float32) / 255  # not in the sample, outside the 11 directions of its variance
    np.testing.assert_allclose(DataImage(prior, 1, start=unseen)().detach().numpy(), unseen, atol=1e-4)


def test_data_image_starts_where_asked_and_spectrum_image_keeps_the_datas_magnitude():
    images = _strokes()
    prior = image_prior(images)
    start = images[:3].astype(np.float32) / 255
    np.testing.assert_allclose(DataImage(prior, 3, start=start)().detach().numpy(), start, atol=1e-4)
    a, b = DataImage(prior, 2, seed=1)().detach(), DataImage(prior, 2, seed=1)().detach()
    assert torch.equal(a, b) and a.shape == (2, 1, 8, 8) and 0 <= float(a.min()) and float(a.max()) <= 1
    spectrum = SpectrumImage(prior, 2, seed=0)
    wanted = torch.polar(spectrum.magnitude.expand_as(spectrum.phase), spectrum.phase)
    raw = torch.fft.irfft2(wanted, s=(8, 8), norm="ortho")  # before the clip
    # columns 1 .. W/2 - 1 are free of the real-image symmetry: their magnitude is exactly the data's
    got = torch.fft.rfft2(raw, norm="ortho").abs()[0].detach()
    np.testing.assert_allclose(got[..., 1:-1], prior.magnitude[..., 1:-1], atol=1e-4)
    image = spectrum()
    image.sum().backward()  # the straight-through clip lets the gradient reach the phase
    assert spectrum.phase.grad is not None and float(spectrum.phase.grad.abs().sum()) > 0


def test_class_margin_is_the_logit_over_the_runner_up(outputs):
    np.testing.assert_allclose(class_margin(2)(outputs), [30 - 10, -60 - 50])
    np.testing.assert_allclose(class_margin([0, 1])(outputs), [10 - 30, 50 - 40])


def test_visualize_with_the_data_recipe(tiny):
    prior = image_prior(_strokes())
    vis = visualize(tiny, "out", image_shape=SHAPE, steps=8, prior=prior, restarts=2)
    assert vis.settings["parameterisation"] == "data" and vis.settings["target"] == "class margin over the runner-up"
    assert vis.start_similarity.shape == (3, 1) and (np.abs(vis.start_similarity) <= 1).all()
    assert visualize(tiny, "conv", image_shape=SHAPE, steps=2, prior=prior).settings["parameterisation"] == "pixel"
    assert visualize(tiny, "fc", image_shape=SHAPE, steps=2).settings["parameterisation"] == "pixel"  # no prior
    assert visualize(tiny, "fc", image_shape=SHAPE, steps=2, prior=prior).settings["target"] == "neuron"
    with pytest.raises(LayerscopeError, match="give prior="):
        visualize(tiny, "fc", image_shape=SHAPE, steps=2, parameterisation="data")
    with pytest.raises(LayerscopeError, match=r"prior is of \(1, 9, 9\) images"):
        visualize(tiny, "fc", image_shape=SHAPE, steps=2, prior=image_prior(np.zeros((4, 1, 9, 9), np.uint8)))
    with pytest.raises(LayerscopeError, match="unknown parameterisation 'pca'"):
        visualize(tiny, "fc", image_shape=SHAPE, steps=2, parameterisation="pca")


def test_start_similarity_is_one_for_identical_starts_and_low_for_unrelated_ones():
    same = np.repeat(np.random.default_rng(0).random((2, 1, 1, 1, 8, 8)), 3, axis=2)  # (U, n, S, C, H, W)
    np.testing.assert_allclose(start_similarity(same), 1.0, atol=1e-6)
    other = np.random.default_rng(1).random((2, 1, 3, 1, 8, 8))
    assert (np.abs(start_similarity(other)) < 0.4).all()


@pytest.mark.parametrize("with_prior", [True, False])
def test_accentuate_raises_the_unit_and_stays_near_the_image(tiny, with_prior):
    prior = image_prior(_strokes()) if with_prior else None
    start = _strokes(1)[0].astype(np.float32) / 255
    acc = accentuate(tiny, "fc", 2, start, prior=prior, steps=32)
    assert acc.activation > acc.start_activation
    assert 0 < acc.change < 0.5 and acc.image.shape == start.shape
    np.testing.assert_array_equal(acc.start, start)
    assert acc.settings["parameterisation"] == ("data" if with_prior else "pixel")
    conv = accentuate(tiny, "conv", 1, start, prior=prior, steps=32)
    assert conv.settings["parameterisation"] == "pixel" and conv.activation >= conv.start_activation
    near = accentuate(tiny, "fc", 2, start, prior=prior, steps=32, closeness_weight=1000.0)
    assert near.change < acc.change  # a heavier closeness penalty changes the image less
    with pytest.raises(LayerscopeError, match="one \\(C, H, W\\) image"):
        accentuate(tiny, "fc", 2, start[None], prior=prior)


def test_layer_featurevis_reports_one_bar_that_only_rises(tiny_run):
    # two optimisations and an accentuation per unit, each reporting 0..its steps: once read 0 -> 91 -> 35 -> 100%
    calls = []
    layer_featurevis(
        Run(tiny_run.path), "conv2", [1, 2], steps=4, recompute=True, store=False, progress=lambda *c: calls.append(c)
    )
    assert {task for task, _, _ in calls} == {"featurevis conv2"}
    fractions = [done / total for _, done, total in calls]
    assert fractions[0] == 0 and fractions[-1] == 1
    assert all(a <= b for a, b in zip(fractions, fractions[1:], strict=False))


def test_colour_images_are_optimised_in_the_datas_decorrelated_colours():
    """Lucid's colour decorrelation, estimated from the dataset: the prior's (3, 3) matrix is the square root of the
    channels' covariance (up to its scale), and a pixel or Fourier image steps in those colours."""
    from layerscope.featurevis import FourierImage, PixelImage
    from layerscope.featurevis.prior import image_prior

    rng = np.random.default_rng(0)
    grey = rng.random((40, 1, 8, 8))
    tint = np.array([1.0, 0.8, 0.2])[None, :, None, None]
    images = np.clip(grey * tint + 0.05 * rng.random((40, 3, 8, 8)), 0, 1).astype(np.float32)
    prior = image_prior(images)
    assert prior.colour is not None and prior.colour.shape == (3, 3)
    assert np.linalg.norm(prior.colour, axis=0).max() == pytest.approx(1.0, abs=1e-5)
    channels = images.transpose(1, 0, 2, 3).reshape(3, -1)
    covariance = np.cov(channels)
    product = prior.colour @ prior.colour.T
    np.testing.assert_allclose(product / product[0, 0], covariance / covariance[0, 0], rtol=1e-3, atol=1e-4)
    assert image_prior(images[:, :1]).colour is None  # one channel: nothing to decorrelate
    for make in (PixelImage, FourierImage):
        plain = make((3, 8, 8), seed=1)
        param = make((3, 8, 8), seed=1, colour=prior.colour)
        with torch.no_grad():
            param.parameters()[0][:, 0] += 1.0  # the first decorrelated colour: the data's tint
            plain.parameters()[0][:, 0] += 1.0
        moved = (param() - 0.5).flatten(2).abs().mean(2)[0]  # (3,) per channel
        assert (moved > 0.01).all(), (make.__name__, moved)  # every channel, in the tint's proportions
        assert moved[1] > moved[2] and moved[0] > moved[2]
        still = (plain() - 0.5).flatten(2).abs().mean(2)[0]
        assert still[1] < 0.01 and still[2] < 0.01  # without it, only the red channel moved
