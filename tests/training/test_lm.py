"""Language-model training: fused = unfused, chunked token evaluation = the full-logits
reference, padded positions, the stored learning rate, and the probes a token run keeps."""

from pathlib import Path

import numpy as np
import pytest
import torch

from geomviz import metrics as M
from geomviz.data import DataBundle
from geomviz.models import Classifier, build_backbone
from geomviz.objectives import create_objective
from geomviz.store import open_run
from geomviz.training.config import resolve_config
from geomviz.training.evaluate_tokens import evaluate_tokens
from geomviz.training.train import _Step, objective_name, train

V, T = 40, 12


def token_bundle(seed=0, n=96, n_test=24, pad=True) -> DataBundle:
    g = torch.Generator().manual_seed(seed)

    def seqs(k):
        s = torch.randint(0, V, (k, T + 1), generator=g)
        return s[:, :-1].contiguous(), s[:, 1:].contiguous()

    x, y = seqs(n)
    xt, yt = seqs(n_test)
    xo, _ = seqs(n_test)
    if pad:  # padded tails: the last 3 targets of every 4th sequence are ignored
        y[::4, -3:] = -100
        yt[::4, -3:] = -100
    groups = [i // 2 for i in range(V)]  # pairs of "synonyms"
    return DataBundle("toy", x, y, xt, yt, [f"t{i}" for i in range(V)], "tokens", x_ood=xo,
                      ood_name="other", info={"groups": groups,
                                              "freq_bucket": [0] * 4 + [1] * 16 + [2] * 20})


def _model(objective, dtype=torch.float64):
    torch.manual_seed(0)
    bb = build_backbone("gpt", (T,), 16, vocab_size=V, block_size=T)
    torch.manual_seed(1)
    return Classifier(bb, create_objective(objective, 16, V, validate=False)).to(dtype)


@pytest.mark.parametrize("plain,fused", [("tfsd", "tfsd_fused"), ("ce", "ce_fused")])
def test_fused_lm_step_equals_the_unfused_one_in_float64(plain, fused):
    a, b = _model(plain), _model(fused)
    b.load_state_dict(a.state_dict())
    bundle = token_bundle()
    x, y = bundle.x_train[:8], bundle.y_train[:8]
    la, _ = _Step(a)(x, y)
    lb, logits = _Step(b)(x, y, probe=True)
    assert logits is None
    la.backward()
    lb.backward()
    assert torch.allclose(la, lb, rtol=1e-12)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa.grad, pb.grad, rtol=1e-9, atol=1e-12), name


def test_fused_heads_are_chosen_from_8192_classes_or_when_asked():
    cfg = resolve_config({}, {"objective": "tfsd"})
    assert objective_name(cfg, 8191) == "tfsd" and objective_name(cfg, 8192) == "tfsd_fused"
    assert objective_name(resolve_config({}, {"objective": "ce", "fused": "on"}), 10) == "ce_fused"
    assert objective_name(resolve_config({}, {"objective": "ce", "fused": "off"}), 10**5) == "ce"
    assert objective_name(cfg.__class__(objective="metric_ce"), 10**5) == "metric_ce"


@pytest.mark.parametrize("objective", ["ce", "tfsd"])
def test_chunked_token_evaluation_equals_the_full_logits_reference(objective, monkeypatch):
    import geomviz.training.evaluate_tokens as E

    monkeypatch.setattr(E, "LOGIT_BUDGET", 5 * T * V)  # 5 sequences per chunk: ragged chunks
    model = _model(objective, torch.float32)
    bundle = token_bundle()
    seen = {}
    res = evaluate_tokens(model, bundle, torch.device("cpu"), on_test=seen.update)
    with torch.no_grad():
        z = model(bundle.x_test).reshape(-1, V).double()
        f = model.features(bundle.x_test).reshape(-1, 16)
    y = bundle.y_test.reshape(-1)
    keep = y != -100
    z, y, f = z[keep], y[keep], f[keep]
    assert res["test"]["acc"] == pytest.approx(M.accuracy(z, y), abs=1e-12)
    assert res["test"]["nll"] == pytest.approx(M.nll(z, y), rel=1e-6)
    assert res["test"]["ece"] == pytest.approx(M.ece(z, y), abs=1e-6)
    assert len(seen["y"]) == int(keep.sum()) and torch.equal(seen["y"], y)
    norms = f.double().norm(dim=1)
    bucket = torch.as_tensor(bundle.info["freq_bucket"])[y]
    for b, name in enumerate(("top", "mid", "rare")):
        want = norms[bucket == b].mean()
        assert res["test"][f"freq.{name}.norm"] == pytest.approx(float(want), rel=1e-5)
    with torch.no_grad():
        zo = model(bundle.x_ood).reshape(-1, V).double()
    want = M.ood_metrics(M.confidence_scores(z)["msp"], M.confidence_scores(zo)["msp"])
    assert res["ood"]["msp.auroc"] == pytest.approx(want["auroc"], abs=1e-9)
    assert "classes.ratio" in res["test"]
    # the dark-knowledge score: Spearman of class-vector distances with same/other synonym set
    from scipy.stats import spearmanr

    cv = model.objective.head.class_vectors.detach().double()
    g = np.asarray(bundle.info["groups"])
    i, j = np.triu_indices(V, 1)
    ok = (g[i] >= 0) & (g[j] >= 0)
    ref = spearmanr(torch.cdist(cv, cv).numpy()[i, j][ok], (g[i] != g[j])[ok]).statistic
    assert res["test"]["classes.structure"] == pytest.approx(ref, abs=1e-12)
    off = evaluate_tokens(model, bundle, torch.device("cpu"), class_groups=False)
    assert not any(k.startswith("classes.") for k in off["test"])


def test_token_run_trains_with_padding_and_stores_its_probes(tmp_path):
    bundle = token_bundle()
    cfg = resolve_config({}, {"objective": "tfsd", "dataset": "synonyms", "epochs": 2,
                              "batch_size": 16, "seq_len": T, "block_size": T,
                              "feature_dim": 16, "out": str(tmp_path / "run"),
                              "progress": False, "snapshots": 3, "snapshot_size": 50,
                              "snapshot_ood": 10, "flush_every": 3, "lr": 1e-3,
                              "warmup_epochs": 1})
    out = train(cfg, bundle)
    with open_run(out) as run:
        meta = run.meta
        assert meta["status"] == "finished" and meta["kind"] == "tokens"
        lr = run.scalars("lr", split="train")
        steps_per_epoch = meta["steps_per_epoch"]
        # the rate update s used: warmup (s / steps_per_epoch)·lr, then cosine decay
        s0 = int(lr["step"][0])
        assert lr["value"][0] == pytest.approx(1e-3 * s0 / steps_per_epoch)
        assert lr["value"][-1] > 0
        assert len(run.scalars("tokens_per_s", split="train")["value"])
        test = {n: run.scalars(n, split="test")["value"][-1] for n in (
            "acc", "nll", "classes.ratio", "freq.rare.entropy.target", "entropy.all.target",
            "penultimate.norm.mean", "head.anchor_gap.p50")}
        assert all(np.isfinite(v) for v in test.values()), test
        assert np.isfinite(run.scalars("grad.radial_fraction", split="train")["value"]).all()
        ctx = run.arrays("snapshot.context")[0]
        labels = run.arrays("snapshot.labels")[0]
        assert ctx.shape == (60, 8) and (labels[:50] >= 0).all() and (labels[50:] == -1).all()
        cv = run.arrays("snapshot.class_vectors")
        assert len(cv) >= 3 and next(iter(cv.values())).shape == (V, 16)
        assert run.arrays("snapshot.group")[0][:50].tolist() == (labels[:50] // 2).tolist()


class _OneHot(torch.nn.Module):
    """Features = one-hot of the current token: with an order-1 law, a linear head holding
    log P(next | token) then outputs the exact next-token law."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward_features(self, x):
        return torch.nn.functional.one_hot(x, self.vocab).float()  # [B, T, V]


def test_a_model_that_outputs_the_true_law_scores_the_floor(tmp_path, monkeypatch):
    from geomviz.data import load_tokens

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path))
    b = load_tokens("synonyms", 3, vocab_size=48, concepts=20, max_synonyms=4, order=1,
                    seq_len=16, train_tokens=2048, test_tokens=4096)
    v = b.num_classes
    law = b.truth(torch.arange(v)[:, None])[:, 0]  # [V, V]: P(next | current token)
    obj = create_objective("ce", v, v)
    with torch.no_grad():
        obj.head.weight.copy_(torch.log(law.clamp_min(1e-30)).T.float())  # z = W·onehot
        obj.head.bias.zero_()
    res = evaluate_tokens(Classifier(_OneHot(v), obj), b, torch.device("cpu"))["test"]
    assert res["truth.kl"] == pytest.approx(0.0, abs=1e-6)
    assert res["nll"] == pytest.approx(res["truth.nll"], abs=1e-5)
    # the expected NLL of the true law, from the chain: within 4 standard errors of 4096 draws
    assert res["nll"] == pytest.approx(b.info["truth_nll"], abs=4 * 1.5 / 4096**0.5)
    for kind in ("synonym", "single"):
        assert res[f"entropy.{kind}.pred"] == pytest.approx(res[f"entropy.{kind}.truth"],
                                                           abs=1e-5)
    assert res["entropy.single.truth"] == 0.0 and res["entropy.synonym.truth"] > 0.3
    assert 0 < res["entropy.synonym.fraction"] < 1 and 0 < res["entropy.single.fraction"] < 1


TOKEN_PROBES = ["truth.kl", "truth.entropy", "truth.nll", "classes.within", "classes.between",
                "classes.ratio", "freq.top.norm", "freq.rare.entropy.target", "acc", "nll",
                "penultimate.norm.mean", "head.cos_true.mean", "entropy.easy.target",
                "entropy.hard.pred"] + [f"entropy.{k}.{w}" for k in ("synonym", "single")
                                        for w in ("target", "pred", "truth", "fraction")]


@pytest.mark.parametrize("dataset", ["synonyms", "text"])
def test_compare_ce_and_tfsd_on_token_data_stores_every_probe(tmp_path, monkeypatch, dataset):
    from geomviz.cli import main

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    extra = ["--train-tokens", "4096", "--test-tokens", "1024"]
    if dataset == "text":
        corpus = tmp_path / "corpus.txt"
        corpus.write_text("".join(p.read_text(errors="ignore") for p in
                                  sorted(Path("/usr/share/common-licenses").glob("*"))[:3]
                                  if p.is_file()) or "a tiny corpus. " * 2000)
        extra = ["--data-path", str(corpus), "--vocab-size", "300"]
    argv = ["compare", "--objectives", "ce,tfsd", "--dataset", dataset, "--seeds", "0",
            "--epochs", "1", "--seq-len", "32", "--snapshots", "3", "--snapshot-size", "200",
            "--snapshot-ood", "50", "--runs-dir", str(tmp_path), "--name", "lm",
            "--no-progress", *extra]
    assert main(argv) == 0
    for obj in ("ce", "tfsd"):
        with open_run(tmp_path / "lm" / f"{obj}-s0") as run:
            assert run.meta["status"] == "finished"
            want = [n for n in TOKEN_PROBES if dataset == "synonyms" or not (
                n.startswith(("truth.", "classes.")) or ".synonym." in n or ".single." in n)]
            for name in want:  # stored; NaN only where a group is empty (no easy token yet)
                v = run.scalars(name, split="test")["value"]
                assert len(v), (obj, name)
                if not name.startswith(("entropy.easy", "entropy.hard", "freq.")):
                    assert np.isfinite(v[-1]), (obj, name)
            assert len(run.scalars("tokens_per_s", split="train")["value"])
            assert len(run.arrays("snapshot.class_vectors")) >= 2
            assert run.arrays("snapshot.context")[0].shape[1] == 8
            if dataset == "synonyms":
                kind = run.arrays("snapshot.kind")[0]
                assert set(np.unique(kind)) <= {-1, 0, 1, 2} and (kind == 1).any()
