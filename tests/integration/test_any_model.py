"""Any PyTorch model on any dataset, as a user runs it: train or import -> layers -> project -> dashboard.

The CLI runs in-process through its real ``main`` (argv in, exit code and stderr out), which is seconds faster per
command than a subprocess; one test runs the installed console script from another directory.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from layerscope.cli import main
from layerscope.run import Run
from layerscope.tracing import source_model
from tests.conftest import cli, make_image_folder, one_line_error
from tests.models import MLP, LeNetBN

RGB_ARGS = ["--model-arg", "in_channels=3", "--model-arg", "num_classes=4", "--model-arg", "image_size=16"]
FAST = ["--epochs", "2", "--batch-size", "16", "--device", "cpu"]


def ok(capsys, *args):
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    """3-channel 16x16 PNGs of 4 classes, no split folders (a sixth of each class becomes the test split)."""
    return make_image_folder(tmp_path_factory.mktemp("data") / "shapes", n=64, size=16, channels=3, classes=4)


@pytest.fixture(scope="module")
def lenet_run(rgb_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet"
    capsys = pytest.MonkeyPatch()  # module fixtures cannot use capsys; the CLI's output is not checked here
    try:
        sys.argv, argv = (
            [
                "layerscope",
                "train",
                "--model",
                "tests.models:LeNetBN",
                *RGB_ARGS,
                "--dataset",
                str(rgb_folder),
                "--out",
                str(out),
                *FAST,
            ],
            sys.argv,
        )
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code in (0, None)
    finally:
        sys.argv = argv
        capsys.undo()
    return Run(out, trust_model_code=True)  # the test's own model class


def test_lenet_with_batch_norm_and_functional_ops(lenet_run, capsys):
    run = lenet_run
    shapes = {info.name: (info.kind, info.shape) for info in run.layers}
    assert shapes == {
        "input": ("image", (3, 16, 16)),
        "conv1": ("conv", (6, 16, 16)),
        "bn1": ("conv", (6, 16, 16)),
        "conv2": ("conv", (12, 8, 8)),
        "bn2": ("conv", (12, 8, 8)),
        "fc1": ("dense", (32,)),
        "bn3": ("dense", (32,)),
        "fc2": ("dense", (4,)),
    }
    assert run.manifest["model"]["class"] == "tests.models:LeNetBN"
    assert run.manifest["dataset"]["class_names"] == ["cat", "dog", "owl", "yak"]
    assert "1/6 of each class" in run.manifest["dataset"]["test_split"]
    assert run.probs.shape == (64, 4) and run.channel_summary("bn2").shape == (64, 12)
    # the model loads back with the Run's layers, and every layer has its top images
    model = run.load_model()
    assert isinstance(source_model(model), LeNetBN) and run.topk("conv2").indices.shape == (12, 9)
    out = ok(capsys, "project", run.path, "--layer", "bn2", "--method", "pca", "--recompute", "--trust-model-code")
    assert "pca of bn2: 64 points" in out  # a conv layer: recomputed from the model, batch by batch
    assert Run(run.path).projection("bn2", "pca").shape == (64, 2)


def test_inside_views_of_an_rgb_model_with_batch_norm(lenet_run):
    from layerscope.network import connections
    from layerscope.receptive import receptive_field

    run = lenet_run
    model = run.load_model()
    kinds = {c.dst: c.kind for c in connections(model, run.layers)}
    # bn1 is one-to-one with conv1; fc1 reads bn2 through a functional max-pool and flatten, which no module shows
    assert kinds["bn1"] == "identity" and kinds["conv2"] == "conv" and kinds["fc1"] == "none"
    assert receptive_field(model, "conv1", (3, 16, 16)).size == (3, 3)
    # conv2 is behind a functional F.max_pool2d, followed along the graph: 3 + 1 = 4 pixels at stride 2, then
    # 4 + 2 * 2 = 8; the paddings put it at -1 - 1 * 2 = -3
    rf = receptive_field(model, "conv2", (3, 16, 16))
    assert not rf.whole_image and (rf.size, rf.stride, rf.offset) == ((8, 8), (2, 2), (-3, -3))


def _dash_request(client, app, output, values):
    """POST one callback as the browser does; ``values`` overrides inputs and states by component id."""
    callback = app.callback_map[output]

    def value(item):
        return values.get(item["id"])

    outputs = [dict(zip(("id", "property"), o.rsplit(".", 1), strict=True)) for o in output.strip(".").split("...")]
    payload = {
        "output": output,
        "outputs": outputs if output.startswith("..") else outputs[0],
        "inputs": [{**i, "value": value(i)} for i in callback["inputs"]],
        "state": [{**s, "value": value(s)} for s in callback["state"]],
        "changedPropIds": [f"{callback['inputs'][0]['id']}.{callback['inputs'][0]['property']}"],
    }
    return client.post("/_dash-update-component", json=payload)


def test_dashboard_of_an_rgb_model(lenet_run):
    from dash import MATCH

    from layerscope.dashboard import create_app, ids
    from tests.unit.test_server_guard import UPDATE, callback_body, prop

    app = create_app(lenet_run)
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    layout = client.get("/_dash-layout").get_data(as_text=True)
    for name in ("conv1", "bn1", "bn2", "fc1", "bn3", "fc2"):
        assert f'"{name}"' in layout
    # a projection panel's figure, through a real request
    view = {"layer": "bn3", "method": "pca", "color": "label", "split": "all"}
    inputs = {prop(ids.proj(part, "a"), "value"): value for part, value in view.items()}
    response = client.post(UPDATE, json=callback_body(app, prop(ids.proj("graph", MATCH), "figure") + "...", inputs))
    assert response.status_code == 200
    figure = response.get_json()["response"][prop(ids.proj("graph", "a"), "")[:-1]]["figure"]
    assert len(figure["data"]) >= 4 and "cannot show" not in response.get_data(as_text=True)
    # the network graph with every conv layer expanded into channels
    output = next(key for key in app.callback_map if "net-graph.figure" in key)
    values = {
        "net-expand": ["conv1", "bn1", "conv2", "bn2"],
        "net-edges": 3,
        "net-threshold": 0.0,
        "net-color": "activation",
        "selected": 0,
        "gate-network": 1,  # drawn once its view was shown (views.py)
    }
    assert _dash_request(client, app, output, values).status_code == 200
    # each layer's unit card
    output = next(key for key in app.callback_map if "unit-weights.figure" in key)
    for info in lenet_run.layers[1:]:
        response = _dash_request(client, app, output, {"gate-unit": 1, "unit": {"layer": info.name, "unit": 0}})
        assert response.status_code == 200, info.name
    # strokes for a model of colour images: one line that says why drawing is off, not a 500
    strokes = {"strokes": [[[0.2, 0.2], [0.8, 0.8]]], "version": 1}
    response = client.post("/_layerscope/draw", json=strokes, headers={"Origin": "http://localhost"})
    assert response.status_code == 400 and "Drawing works on grey images" in response.get_json()["error"]


@pytest.fixture(scope="module")
def grey_folder(tmp_path_factory):
    """1-channel 12x12 PNGs of 3 classes in train/ and test/ folders."""
    return make_image_folder(
        tmp_path_factory.mktemp("data") / "grey", n=48, size=12, channels=1, classes=3, splits=True
    )


def test_mlp_on_grey_images_with_layer_patterns(grey_folder, tmp_path, capsys):
    out = tmp_path / "mlp"
    args = ["--model-arg", "image_size=12", "--model-arg", "num_classes=3", "--model-arg", "hidden=24"]
    ok(
        capsys,
        "train",
        "--model",
        "tests.models:MLP",
        *args,
        "--dataset",
        grey_folder,
        "--class-names",
        "a,b,c",
        "--include",
        "net.*",
        "--exclude",
        "net.6",
        "--out",
        out,
        *FAST,
    )
    run = Run(out, trust_model_code=True)
    assert [(i.name, i.shape) for i in run.layers] == [("input", (1, 12, 12)), ("net.1", (24,)), ("net.4", (12,))]
    assert run.manifest["model"]["layer_patterns"] == {"include": ["net.*"], "exclude": ["net.6"]}
    assert run.manifest["dataset"]["n_train"] == 36 and run.class_names == ["a", "b", "c"]
    assert "pca of net.4: 48 points" in ok(capsys, "project", out, "--layer", "net.4", "--method", "pca")
    info = json.loads(ok(capsys, "info", out, "--json"))
    assert [layer["name"] for layer in info["layers"]] == ["input", "net.1", "net.4"]

    from layerscope.dashboard import create_app

    app = create_app(run)
    assert app.server.test_client().get("/").status_code == 200
    assert '"net.4"' in app.server.test_client().get("/_dash-layout").get_data(as_text=True)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (
            ["--model-arg", "in_channels=3", "--model-arg", "image_size=16"],
            ["model outputs 10 classes but the dataset has 4", "--model-arg num_classes=4"],
        ),
        (["--model-arg", "num_classes=4"], ["model does not accept 3x16x16 images (", "--model-arg in_channels=3"]),
        ([*RGB_ARGS, "--include", "fc9*"], ["--include 'fc9*' matches no layer", "conv1, bn1, conv2"]),
        ([*RGB_ARGS, "--exclude", "zz*"], ["--exclude 'zz*' matches no layer"]),
        (["--model-arg", "oops"], ["--model-arg 'oops': write it as name=value"]),
    ],
)
def test_model_that_does_not_fit_exits_2(rgb_folder, tmp_path, capsys, args, fragments):
    line = one_line_error(
        capsys,
        "train",
        "--model",
        "tests.models:LeNetBN",
        *args,
        "--dataset",
        rgb_folder,
        "--out",
        tmp_path / "run",
        *FAST,
    )
    assert all(f in line for f in fragments), line
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


def test_unknown_module_exits_2(rgb_folder, tmp_path, capsys):
    line = one_line_error(
        capsys, "train", "--model", "nosuchpkg.models:Net", "--dataset", rgb_folder, "--out", tmp_path / "run"
    )
    assert "cannot import model class 'nosuchpkg.models:Net'" in line
    line = one_line_error(
        capsys, "train", "--model", "tests.models:Nope", "--dataset", rgb_folder, "--out", tmp_path / "run"
    )
    assert "cannot import model class 'tests.models:Nope'" in line


def test_import_model_from_safetensors_and_pt(rgb_folder, tmp_path, capsys):
    torch.manual_seed(0)
    model = MLP(in_channels=3, num_classes=4, image_size=16).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "mlp.safetensors")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "mlp.pt")  # a training checkpoint's layout
    runs = []
    for weights in ("mlp.safetensors", "mlp.pt"):
        out = tmp_path / weights.replace(".", "-")
        ok(
            capsys,
            "import-model",
            "--model",
            "tests.models:MLP",
            *RGB_ARGS,
            "--weights",
            tmp_path / weights,
            "--dataset",
            rgb_folder,
            "--out",
            out,
            "--device",
            "cpu",
        )
        runs.append(Run(out, trust_model_code=True))
    a, b = runs
    assert a.manifest["history"] == [] and a.manifest["provenance"]["imported_from"].endswith("mlp.safetensors")
    assert [i.name for i in a.layers] == ["input", "net.1", "net.4", "net.6"]
    expected = torch.softmax(model(a.dataset().pixels(slice(0, 8))), 1).detach().numpy()
    assert abs(a.probs[:8] - expected).max() < 1e-5 and (a.probs[:] == b.probs[:]).all()


def _import_error(capsys, weights, dataset, out):
    """The one-line error of importing ``weights`` as an MLP of RGB_ARGS on ``dataset``."""
    args = ("import-model", "--model", "tests.models:MLP", *RGB_ARGS, "--weights", weights, "--dataset", dataset)
    return one_line_error(capsys, *args, "--out", out)


def test_import_model_refuses_pickled_objects(rgb_folder, tmp_path, capsys):
    torch.save(MLP(in_channels=3, num_classes=4, image_size=16), tmp_path / "whole.pt")  # the module, pickled
    line = _import_error(capsys, tmp_path / "whole.pt", rgb_folder, tmp_path / "run")
    assert "refused" in line and "tests.models.MLP" in line and "never unpickles" in line
    assert not (tmp_path / "run").exists()
    torch.save(LeNetBN(3, 4, 16).state_dict(), tmp_path / "other.pt")
    line = _import_error(capsys, tmp_path / "other.pt", rgb_folder, tmp_path / "run")
    assert "weights do not fit the model" in line


def test_console_script_imports_a_model_from_the_current_directory(tmp_path):
    """``layerscope`` (the installed script, whose sys.path lacks the cwd) finds ``mymodels.py`` beside the user."""
    (tmp_path / "mymodels.py").write_text(
        "from torch import nn\n\n"
        "class Tiny(nn.Module):\n"
        "    def __init__(self, num_classes=10):\n"
        "        super().__init__()\n"
        "        self.body = nn.Sequential(\n"
        "            nn.Flatten(), nn.Linear(16 * 16 * 3, 8), nn.ReLU(), nn.Linear(8, num_classes)\n"
        "        )\n"
        "    def forward(self, x):\n"
        "        return self.body(x)\n"
    )
    make_image_folder(tmp_path / "data", n=24, size=16, channels=3, classes=4)
    script = Path(sys.executable).with_name("layerscope")
    proc = subprocess.run(
        [
            str(script),
            "train",
            "--model",
            "mymodels:Tiny",
            "--model-arg",
            "num_classes=4",
            "--dataset",
            "data",
            "--out",
            "run",
            "--epochs",
            "1",
            "--device",
            "cpu",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert [i.name for i in Run(tmp_path / "run").layers] == ["input", "body.1", "body.3"]


def test_a_pooled_conv_layer_projects_with_a_non_linear_method(rgb_folder, tmp_path, capsys):
    """A conv layer of 8 x 1 x 1 (a global average pool) is narrow enough to feed the non-linear methods whole; it
    used to end in a traceback (features/pool.pca.npy missing: only layers over 100 features keep their PCA scores)."""
    out = tmp_path / "pooled"
    ok(
        capsys,
        "train",
        "--model",
        "tests.models:PooledCNN",
        *RGB_ARGS,
        "--dataset",
        str(rgb_folder),
        "--out",
        str(out),
        *FAST,
    )
    run = Run(out, trust_model_code=True)
    assert {info.name: (info.kind, info.shape) for info in run.layers}["pool"] == ("conv", (8, 1, 1))
    for method in ("lda", "umap"):
        ok(capsys, "project", str(out), "--layer", "pool", "--method", method, "--trust-model-code")
        embedding = Run(out, trust_model_code=True).projection("pool", method)
        assert embedding.shape == (len(run.labels), 2) and np.isfinite(embedding).all()
        assert Run(out).projection_meta("pool", method)["input"] == "activations"


def test_import_model_checks_the_weights_before_it_reads_the_dataset(tmp_path, capsys):
    torch.save(LeNetBN(3, 4, 16).state_dict(), tmp_path / "other.pt")
    # no such dataset: the weights' error comes first
    line = _import_error(capsys, tmp_path / "other.pt", tmp_path / "not-read-yet", tmp_path / "run")
    assert "weights do not fit the model" in line and not (tmp_path / "run").exists()
