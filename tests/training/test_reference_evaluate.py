"""Evaluation in batches against references on the full logits computed once: accuracy, NLL
(scipy), ECE (a binned loop), AUROC / FPR95 (sklearn), NC1 (loops), noise metrics by hand;
and the token evaluation's truth.* against the exact law, position by position."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import softmax as sp_softmax
from scipy.stats import entropy as sp_entropy
from sklearn.metrics import roc_auc_score, roc_curve

from geomviz.data import DataBundle, apply_label_noise
from geomviz.models import Classifier, build_backbone
from geomviz.objectives import create_objective
from geomviz.training.evaluate import evaluate
from geomviz.training.evaluate_tokens import evaluate_tokens
from tests.data.test_reference_synonyms import _kinds
from tests.test_reference_metrics import literal_ece, literal_nc

D, C = 5, 4


def _bundle(seed=0) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(C, D, generator=g) * 2

    def draw(n):
        y = torch.randint(0, C, (n,), generator=g)
        return means[y] + torch.randn(n, D, generator=g), y

    x, y = draw(90)
    xt, yt = draw(61)
    return DataBundle("toy", x, y, xt, yt, [str(i) for i in range(C)], "vector",
                      x_ood=torch.randn(37, D, generator=g) * 4)


def _model(objective: str) -> Classifier:
    torch.manual_seed(0)
    bb = build_backbone("mlp", (D,), 6, (8,))
    return Classifier(bb, create_objective(objective, 6, C)).eval()


@pytest.mark.parametrize("objective", ["ce", "tfsd"])
def test_batched_evaluation_equals_references_on_the_full_logits(objective):
    model = _model(objective)
    b = apply_label_noise(_bundle(), 0.3, "symmetric", seed=1)
    out = evaluate(model, b, torch.device("cpu"), batch_size=7)  # ragged batches
    with torch.no_grad():
        z = model(b.x_test).double().numpy()
        zo = model(b.x_ood).double().numpy()
        f_train = model.features(b.x_train).double().numpy()
        z_train = model(b.x_train).double().numpy()
    y = b.y_test.numpy()
    test = out["test"]
    assert test["acc"] == pytest.approx(np.mean(z.argmax(1) == y), abs=1e-12)
    nll = -sp_log_softmax(z, axis=1)[np.arange(len(y)), y].mean()
    assert test["nll"] == pytest.approx(nll, rel=1e-5)
    p = sp_softmax(z, axis=1)
    assert test["ece"] == pytest.approx(literal_ece(p.max(1), p.argmax(1) == y, 15), abs=1e-5)
    # OOD positive, scored by -confidence; FPR at the first threshold reaching TPR 0.95
    is_ood = np.r_[np.zeros(len(z)), np.ones(len(zo))]
    scores = {"msp": np.r_[p.max(1), sp_softmax(zo, axis=1).max(1)],
              "max_logit": np.r_[z.max(1), zo.max(1)]}
    if objective == "tfsd":
        c = model.head.centers.detach().double().numpy()
        with torch.no_grad():
            fi = model.features(b.x_test).double().numpy()
            fo = model.features(b.x_ood).double().numpy()
        dist = lambda f: ((f[:, None, :] - c[None]) ** 2).sum(-1)  # noqa: E731
        scores["min_distance"] = -np.r_[dist(fi).min(1), dist(fo).min(1)]
    for name, s in scores.items():
        assert out["ood"][f"{name}.auroc"] == pytest.approx(roc_auc_score(is_ood, -s), abs=1e-5)
        fpr, tpr, _ = roc_curve(is_ood, -s, drop_intermediate=False)
        assert out["ood"][f"{name}.fpr95"] == pytest.approx(fpr[tpr >= 0.95].min(), abs=1e-9)
    train = out["train_eval"]
    assert train["nc1"] == pytest.approx(literal_nc(f_train, b.y_train.numpy())["nc1"],
                                         rel=1e-4)
    assert train["feature_norm"] == pytest.approx(np.linalg.norm(f_train, axis=1).mean(),
                                                  rel=1e-6)
    pred, noisy = z_train.argmax(1), b.noisy.numpy()
    assert train["memorised"] == pytest.approx(np.mean(pred[noisy] == b.y_train.numpy()[noisy]))
    assert train["noisy_acc_true"] == pytest.approx(
        np.mean(pred[noisy] == b.y_train_clean.numpy()[noisy]))
    assert train["clean_acc"] == pytest.approx(np.mean(pred[~noisy] ==
                                                       b.y_train.numpy()[~noisy]))


def test_token_truth_metrics_equal_the_exact_law_position_by_position(monkeypatch, tmp_path):
    """truth.kl = mean KL(true ‖ q), truth.entropy = mean H(true), truth.nll = mean -log
    true(y), over every position, evaluated in ragged chunks of 3 sequences."""
    import geomviz.training.evaluate_tokens as E
    from geomviz.data.synonyms import synonyms

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path))
    t = 8
    b = synonyms(seed=1, vocab_size=20, concepts=7, max_synonyms=4, order=2, seq_len=t,
                 train_tokens=256, test_tokens=160)
    v = b.num_classes
    monkeypatch.setattr(E, "LOGIT_BUDGET", 3 * t * v)
    torch.manual_seed(0)
    model = Classifier(build_backbone("gpt", (t,), 16, vocab_size=v, block_size=t),
                       create_objective("tfsd", 16, v)).eval()
    out = evaluate_tokens(model, b, torch.device("cpu"))["test"]
    with torch.no_grad():
        logq = torch.log_softmax(model(b.x_test).double(), -1).numpy().reshape(-1, v)
    law = b.truth(b.x_test).numpy().reshape(-1, v)
    y = b.y_test.numpy().reshape(-1)
    kl = [sum(p * (np.log(p) - lq) for p, lq in zip(row, lrow, strict=True) if p > 0)
          for row, lrow in zip(law, logq, strict=True)]
    h = [-sum(p * np.log(p) for p in row if p > 0) for row in law]
    assert out["truth.kl"] == pytest.approx(np.mean(kl), rel=1e-5)
    assert out["truth.entropy"] == pytest.approx(np.mean(h), rel=1e-9)
    assert out["truth.nll"] == pytest.approx(-np.mean(np.log(law[np.arange(len(y)), y])),
                                             rel=1e-9)
    assert out["nll"] == pytest.approx(-logq[np.arange(len(y)), y].mean(), rel=1e-5)
    # per position kind (determined / one synonym set): H(true), H(q) and the TFSD target's H(p)
    kinds = _kinds(law, np.asarray(b.info["groups"]))
    with torch.no_grad():
        z = model(b.x_test).double().numpy().reshape(-1, v)
    zp = z.copy()
    zp[np.arange(len(y)), y] = 0.0
    h_q, h_p = sp_entropy(np.exp(logq), axis=1), sp_entropy(sp_softmax(zp, axis=1), axis=1)
    for code, name in ((2, "single"), (1, "synonym")):
        m = kinds == code
        assert m.any()
        assert out[f"entropy.{name}.fraction"] == pytest.approx(m.mean(), abs=1e-12)
        assert out[f"entropy.{name}.truth"] == pytest.approx(np.mean(np.array(h)[m]), abs=1e-9)
        assert out[f"entropy.{name}.pred"] == pytest.approx(h_q[m].mean(), rel=1e-5)
        assert out[f"entropy.{name}.target"] == pytest.approx(h_p[m].mean(), rel=1e-5)
