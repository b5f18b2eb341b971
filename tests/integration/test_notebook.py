"""layerscope.show in a real Jupyter kernel (nbclient + ipykernel), and as a printed URL outside one."""

import urllib.request

import nbformat
import pytest
from nbclient import NotebookClient

import layerscope
from tests import nn_data


@pytest.fixture(scope="module")
def nn_file(tmp_path_factory):
    return nn_data.write(tmp_path_factory.mktemp("nb") / "NN_data.json")


def test_show_inline_in_a_notebook(nn_file, tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(f"import layerscope as ls\nurl = ls.show({str(nn_file)!r}, height=700)\nurl"),
        nbformat.v4.new_code_cell(
            "import urllib.request\npage = urllib.request.urlopen(url).read().decode()\n"
            "print(urllib.request.urlopen(url + '_dash-layout').status, 'layerscope' in page)"
        ),
    ]
    env = {"LAYERSCOPE_CACHE": str(tmp_path / "cache")}
    client = NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        client.execute()
    outputs = notebook.cells[0].outputs
    shown = [out for out in outputs if out["output_type"] == "display_data"]
    link = [out for out in outputs if out["output_type"] == "execute_result"][0]["data"]["text/html"]
    logged = "".join(out.get("text", "") for out in outputs if out["output_type"] == "stream")
    assert len(shown) == 1 and "GET /" not in logged, outputs  # the iframe, and no request log under it
    html = shown[0]["data"]["text/html"]
    assert "<iframe" in html and 'height="700"' in html and "http://127.0.0.1:" in html
    assert link.startswith('<a href="http://127.0.0.1:') and 'target="_blank"' in link  # the returned URL
    assert notebook.cells[1].outputs[0]["text"].strip() == "200 True"  # the server answers inside the kernel


def test_show_prints_a_url_outside_a_notebook(nn_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAYERSCOPE_CACHE", str(tmp_path / "cache"))
    url = layerscope.show(nn_file)
    assert capsys.readouterr().out.strip() == f"layerscope dashboard: {url}"
    with urllib.request.urlopen(url) as response:
        assert response.status == 200 and "layerscope" in response.read().decode()
    # showing again on the same port replaces the dashboard there
    port = int(url.rsplit(":", 1)[1].strip("/"))
    assert layerscope.show(nn_file, port=port) == url
    with urllib.request.urlopen(url + "_dash-layout") as response:
        assert response.status == 200
