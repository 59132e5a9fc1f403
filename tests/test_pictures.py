"""Every picture says which run (recipe, overrides) it shows, and shows what the text says."""

from __future__ import annotations

import json

from conftest import run_dirs, tiny_recipe, write_recipe


def titles(fig) -> str:
    return " ".join([fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in fig.axes])


def test_landscape_writes_to_out_titled_with_the_run_and_on_a_log_colour_scale(cli, tmp_path, monkeypatch):
    import sys
    monkeypatch.setattr(sys, "argv", ["dltrain", "run", "r.yaml", "optimizer.lr=0.02"])  # what run.json records
    write_recipe(tmp_path / "r.yaml", tiny_recipe())
    assert cli("run", "r.yaml", "optimizer.lr=0.02").code == 0
    run = run_dirs(tmp_path / "runs")[0]
    result = cli("landscape", run, "--points", "5", "--samples", "64", "--out", tmp_path / "mine.png")
    assert result.code == 0, result.err
    assert (tmp_path / "mine.png").is_file() and not (run / "landscape.png").exists()
    assert "mine.png" in result.out
    from dltrain.views.diagnostic_figures import landscape_figure, run_subject
    info = json.loads((run / "run.json").read_text())
    subject = run_subject(info, run.name)
    assert subject == f"run {run.name} (r.yaml, optimizer.lr=0.02)"
    fig = landscape_figure(json.loads((run / "landscape.json").read_text()), subject)
    assert subject in titles(fig)
    from matplotlib.colors import LogNorm
    assert any(isinstance(getattr(c, "norm", None), LogNorm) for ax in fig.axes for c in ax.collections)
    assert cli("landscape", run, "--out", "x.jpg").code == 2


def test_a_diverged_run_shows_its_gradient_blow_up_in_the_depth_picture(cli, tmp_path):
    write_recipe(tmp_path / "r.yaml", tiny_recipe(optimizer={"name": "sgd", "lr": 1.0e30}))
    assert cli("run", "r.yaml").code == 3
    run = run_dirs(tmp_path / "runs")[0]
    result = cli("diagnose", run, "--plot", tmp_path / "depth.png")
    assert result.code == 0, result.err
    from dltrain.verbs.diagnose import diagnose_run
    from dltrain.views.diagnostic_figures import depth_figure
    diagnosis = diagnose_run(run)
    fig = depth_figure(diagnosis.records, f"run {run.name}", diagnosis.forensics)
    assert len(fig.axes) == 3 and "gradient norm before the divergence" in titles(fig)
    assert fig.axes[2].get_yscale() == "log" and fig.axes[2].lines
    assert run.name in titles(fig)


def test_an_empty_activation_panel_says_why():
    from dltrain.views.diagnostic_figures import depth_figure
    record = {"phase": "init", "epoch": 0, "activations": [],
              "layers": [{"index": 1, "grad_norm": 0.5}, {"index": 2, "grad_norm": 0.2}]}
    fig = depth_figure([record], "run lstm")
    texts = " ".join(t.get_text() for t in fig.axes[1].texts)
    assert "no activation layers" in texts and "LSTM" in texts
