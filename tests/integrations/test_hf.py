"""The Transformers callback on a tiny GPT-2 and a tiny BERT classifier built from configs
(random weights): first-class runs, shifted and masked labels, rows at logging_steps,
evaluation at eval_steps, token probes and snapshots; bad input refused."""

from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("transformers")

from geomviz.store import open_run  # noqa: E402
from tests.integrations.hf_helpers import T, Tokens, V, args, tiny_bert, tiny_gpt2  # noqa: E402


def _train(out, model, data, eval_data, **cb_kw):
    from transformers import Trainer

    from geomviz.integrations.hf import GeomvizCallback

    cb = GeomvizCallback(out, **cb_kw)
    Trainer(model=model, args=args(out.parent / "hf"), train_dataset=data,
            eval_dataset=eval_data, callbacks=[cb]).train()
    return cb


def test_a_tiny_gpt2_run_is_recorded_with_token_probes(tmp_path):
    probe = Tokens(8, seed=5).ids
    groups = torch.arange(V) // 4  # 16 "synonym sets" of 4 tokens
    _train(tmp_path / "gpt2", tiny_gpt2(), Tokens(64), Tokens(32, seed=1),
           probe_set=(probe, probe.clone()), probe_size=50, token_groups=groups,
           ood=[{"input_ids": torch.randint(V, (8, T))}])
    with open_run(tmp_path / "gpt2") as run:
        meta = run.meta
        assert meta["status"] == "finished" and meta["kind"] == "tokens"
        assert meta["config"]["lr"] == 1e-3 and meta["recorded_by"] == "hf"
        assert run.scalars("loss", "train")["step"].tolist() == [2, 4, 6, 8]
        assert run.scalars("penultimate.norm.p50", "train")["step"].tolist() == [2, 4, 6, 8]
        assert run.scalars("acc", "test")["step"].tolist() == [4, 8]
        for name in ("freq.top.norm", "freq.rare.entropy.pred", "classes.ratio"):
            assert len(run.scalars(name, "test")["step"]) == 2, name
        assert "msp.auroc" in meta["final"]["ood"]
        labels = run.arrays("snapshot.labels")[0]
        assert (labels >= 0).sum() == 50 and run.arrays("snapshot.context")[0].shape[1] == 8
        assert run.arrays("snapshot.class_vectors")[8].shape == (V, 32)
        assert run.array_steps("snapshot.features")[-1] == 8


def test_causal_labels_are_shifted_and_padding_is_masked(tmp_path):
    """The probes see exactly the positions the LM loss scores: with every other sequence
    half padding (-100), the probe count n is the number of shifted labels that are kept."""
    from transformers import Trainer

    from geomviz.integrations.hf import GeomvizCallback

    data = Tokens(16)
    pad = [dict(d) for d in data]
    for i, d in enumerate(pad):
        if i % 2:
            d["labels"] = d["labels"].clone()
            d["labels"][T // 2:] = -100
    cb = GeomvizCallback(tmp_path / "r", every=1)
    Trainer(model=tiny_gpt2(), args=args(tmp_path / "hf", max_steps=1, eval_strategy="no",
                                         per_device_train_batch_size=16),
            train_dataset=pad, callbacks=[cb]).train()
    with open_run(tmp_path / "r") as run:
        hist = run.histograms("penultimate.norm", split="train")
    kept = 8 * (T - 1) + 8 * (T // 2 - 1)  # shifted: the last position of each is unscored
    assert hist.counts.sum() == kept


def test_a_tiny_bert_classifier_run_is_recorded(tmp_path):
    _train(tmp_path / "bert", tiny_bert(), Tokens(64, classes=3), Tokens(32, 3, seed=1),
           probe_set=(Tokens(24, 3, seed=2).ids, Tokens(24, 3, seed=2).ids[:, 0] % 3))
    with open_run(tmp_path / "bert") as run:
        assert run.status == "finished" and run.meta["kind"] == "custom"
        assert run.scalars("grad.radial_fraction", "train")["step"].tolist() == [2, 4, 6, 8]
        assert run.scalars("acc", "test")["step"].tolist() == [4, 8]
        assert run.arrays("snapshot.features")[8].shape == (24, 32)


@pytest.mark.parametrize("case", ["head_name", "head_size", "twice"])
def test_bad_input_is_one_error_and_nothing_is_written(tmp_path, case):
    from transformers import Trainer

    from geomviz.integrations.hf import GeomvizCallback

    out = tmp_path / "r"
    if case == "twice":
        cb = GeomvizCallback(out)
        with pytest.raises(ValueError, match="added to the Trainer twice"):
            Trainer(model=tiny_bert(), args=args(tmp_path / "hf", eval_strategy="no"),
                    train_dataset=Tokens(8, 3), callbacks=[cb, cb])
    else:
        head, match = (("nope", "no submodule 'nope'.*classifier") if case == "head_name"
                       else ("bert.pooler.dense", "head outputs 32 scores but the model has "
                                                  "3 classes"))
        with pytest.raises(ValueError, match=match):
            _train(out, tiny_bert(), Tokens(8, 3), Tokens(8, 3), head=head)
    assert not out.exists()


def test_a_missing_transformers_is_one_line_naming_the_extra(monkeypatch):
    import importlib

    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "geomviz.integrations.hf", raising=False)
    with pytest.raises(ImportError) as e:
        importlib.import_module("geomviz.integrations.hf")
    assert str(e.value) == 'geomviz.integrations.hf needs Transformers: pip install "geomviz[hf]"'


def test_a_classifier_called_without_labels_is_one_warning(tmp_path):
    from transformers import Trainer

    from geomviz.integrations.hf import GeomvizCallback

    def loss(outputs, labels, num_items_in_batch=None):  # the Trainer pops the labels
        return torch.nn.functional.cross_entropy(outputs.logits, labels)

    cb = GeomvizCallback(tmp_path / "r")
    with pytest.warns(RuntimeWarning, match="called without labels") as caught:
        Trainer(model=tiny_bert(), args=args(tmp_path / "hf", max_steps=2, eval_strategy="no"),
                train_dataset=Tokens(32, 3), compute_loss_func=loss, callbacks=[cb]).train()
    assert sum("geomviz" in str(w.message) for w in caught) == 1


def test_resume_from_a_trainer_checkpoint_after_a_crash_writes_no_row_twice(tmp_path):
    import sqlite3

    from transformers import Trainer, TrainerCallback

    from geomviz.integrations.hf import GeomvizCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 6:
                raise RuntimeError("simulated crash")

    out, kw = tmp_path / "r", {"save_strategy": "steps", "save_steps": 4, "eval_strategy": "no"}
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(model=tiny_bert(), args=args(tmp_path / "hf", **kw), train_dataset=Tokens(64, 3),
                callbacks=[GeomvizCallback(out), Crash()]).train()
    Trainer(model=tiny_bert(), args=args(tmp_path / "hf", **kw), train_dataset=Tokens(64, 3),
            callbacks=[GeomvizCallback(out)]).train(
        resume_from_checkpoint=str(tmp_path / "hf" / "checkpoint-4"))
    con = sqlite3.connect(out / "run.sqlite")
    assert con.execute("SELECT step, split, name FROM scalars GROUP BY 1, 2, 3 "
                       "HAVING COUNT(*) > 1").fetchall() == []
    with open_run(out) as run:
        assert run.status == "finished"
        assert run.scalars("loss", "train")["step"].tolist() == [2, 4, 6, 8]
        assert run.scalars("penultimate.norm.p50", "train")["step"].tolist() == [2, 4, 6, 8]


def test_two_callbacks_on_one_folder_in_one_trainer_are_refused(tmp_path):
    from transformers import Trainer

    from geomviz.integrations.hf import GeomvizCallback

    out = tmp_path / "r"
    with pytest.raises(ValueError, match="added to the Trainer twice"):
        Trainer(model=tiny_bert(), args=args(tmp_path / "hf", eval_strategy="no"),
                train_dataset=Tokens(8, 3), callbacks=[GeomvizCallback(out),
                                                       GeomvizCallback(tmp_path / "." / "r")])
    assert not out.exists()
