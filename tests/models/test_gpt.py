"""The GPT backbone: shapes, causality, context limit, qk-layernorm, tied embeddings."""

import pytest
import torch

from geomviz import create_objective
from geomviz.models import GPT, build_backbone, tie_embeddings


def _gpt(**kw):
    torch.manual_seed(0)
    return GPT(vocab_size=50, block_size=16, n_layer=2, n_head=4, d_model=32, **kw).double()


def test_features_are_per_position():
    f = _gpt().forward_features(torch.randint(0, 50, (3, 10)))
    assert f.shape == (3, 10, 32) and f.dtype == torch.float64


@pytest.mark.parametrize("qk", [False, True])
def test_changing_a_later_token_leaves_earlier_outputs_unchanged(qk):
    m = _gpt(qk_layernorm=qk).eval()
    x = torch.randint(0, 50, (2, 12))
    x2 = x.clone()
    x2[:, 7] = (x2[:, 7] + 1) % 50
    a, b = m.forward_features(x), m.forward_features(x2)
    assert torch.equal(a[:, :7], b[:, :7])  # exact: no information flows backwards
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_context_limit_is_enforced():
    with pytest.raises(ValueError, match="longer than the context"):
        _gpt().forward_features(torch.zeros(1, 17, dtype=torch.long))


def test_attention_logit_record_matches_a_literal_computation():
    m = _gpt().eval()
    x = torch.randint(0, 50, (2, 9))
    m.record_attn = True
    m.forward_features(x)
    got = m.last_attn_logit_max
    # literal: per layer, q·k/sqrt(dh) over causal pairs, from the block's own inputs
    torch.set_grad_enabled(False)
    h = m.tok(x) + m.pos(torch.arange(9))
    want = []
    for blk in m.blocks:
        a = blk.attn
        q, k, _ = a.qkv(blk.ln1(h)).split(32, dim=2)
        q = q.view(2, 9, 4, 8).transpose(1, 2)
        k = k.view(2, 9, 4, 8).transpose(1, 2)
        s = q @ k.transpose(-2, -1) / 8**0.5
        want.append(max(float(s[..., i, j].max()) for i in range(9) for j in range(i + 1)))
        h = blk(h)
    assert torch.allclose(got.double(), torch.tensor(want, dtype=torch.float64), atol=1e-5)
    torch.set_grad_enabled(True)
    assert m.last_block_out_norm.shape == (2,)


def test_qk_layernorm_bounds_attention_logits_under_large_weights():
    for qk in (False, True):
        m = _gpt(qk_layernorm=qk).eval()
        with torch.no_grad():
            for blk in m.blocks:
                blk.attn.qkv.weight.mul_(100)
        m.record_attn = True
        m.forward_features(torch.randint(0, 50, (2, 16)))
        peak = float(m.last_attn_logit_max.max())
        if qk:  # |q|,|k| <= sqrt(dh) after LayerNorm (unit gain): |q·k|/sqrt(dh) <= sqrt(dh)
            assert peak <= 8**0.5 + 1e-6
        else:
            assert peak > 100


@pytest.mark.parametrize("objective,param", [("ce", "weight"), ("tfsd", "centers")])
def test_tied_embeddings_share_one_parameter(objective, param):
    bb = build_backbone("gpt", (16,), 32, vocab_size=50, block_size=16)
    obj = create_objective(objective, 32, 50)
    tie_embeddings(bb, obj)
    assert getattr(obj.head, param) is bb.tok.weight
    params = list(torch.nn.ModuleList([bb, obj]).parameters())
    assert len(params) == len({id(p) for p in params})


def test_gpt_and_token_data_go_together():
    with pytest.raises(ValueError, match="needs token sequences"):
        build_backbone("gpt", (40,), 32)
    with pytest.raises(ValueError, match="token sequences need the gpt"):
        build_backbone("mlp", (16,), 32, vocab_size=50)
    assert isinstance(build_backbone("auto", (16,), 32, vocab_size=50), GPT)
