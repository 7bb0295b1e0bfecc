"""Interventions against hand-computed references on tiny models.

- steering: the hooked forward's logits equal an eager manual layer loop (embeddings, every
  decoder layer called by hand with an explicit causal mask, final norm, lm_head) in which
  α·v is added after layer ℓ by hand; at layer 0 they equal a forward from
  ``inputs_embeds = embed(ids) + α·v``;
- patching: the hooked forward equals a manual two-pass run (the donor's layer-ℓ state at its
  last token read by the loop, written into the recipient's loop by hand);
- the hooks are gone after the block, also when it raises;
- generation: the hf hook path (KV cache, left-padded batches) and the nnsight path (a full
  trace per token, one item at a time) give the same rows on the organism's models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mimicry.intervene import patch_residual, steer
from mimicry.models import load_model

ORG = Path(__file__).resolve().parents[1] / "src/mimicry/organism/checkpoints"


def manual_logits(model, ids: torch.Tensor, edit=None) -> tuple[torch.Tensor, list]:
    """Return (logits [L, vocab], residual per layer [L, d]) of an eager hand-written loop.

    ``edit(layer, h [1, L, d]) -> h`` is applied after each layer (0 = embeddings).
    """
    base = model.model
    L = ids.shape[1]
    h = base.embed_tokens(ids)
    pos = torch.arange(L)[None]
    pe = base.rotary_emb(h, position_ids=pos)
    mask = torch.full((L, L), torch.finfo(h.dtype).min).triu(1)[None, None]
    states = []
    if edit is not None:
        h = edit(0, h)
    states.append(h[0].clone())
    for i, layer in enumerate(base.layers):
        out = layer(h, attention_mask=mask, position_embeddings=pe, position_ids=pos)
        h = out[0] if isinstance(out, tuple) else out
        if edit is not None:
            h = edit(i + 1, h)
        states.append(h[0].clone())
    return model.lm_head(base.norm(h))[0], states


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def models(request, tiny_model_dir, tiny_tokenizer):
    d = tiny_model_dir(request.param)
    sdpa, tok = load_model(d, dtype="float32")
    eager, _ = load_model(d, dtype="float32", attn_implementation="eager")
    ids = torch.tensor([tok("A is left of B. Is A left of C? Let me think.",
                            add_special_tokens=False)["input_ids"]])
    donor = torch.tensor([tok("All models are managers; some are not.",
                              add_special_tokens=False)["input_ids"]])
    return sdpa, eager, ids, donor


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_steered_forward_equals_manual_addition(models, layer):
    sdpa, eager, ids, _ = models
    v = np.random.default_rng(layer).standard_normal(sdpa.config.hidden_size)
    alpha = 1.7
    with torch.no_grad():
        ref, _ = manual_logits(eager, ids, lambda i, h: h + alpha * torch.as_tensor(
            v, dtype=h.dtype) if i == layer else h)
        plain = sdpa(input_ids=ids).logits[0]
        with steer(sdpa, v, alpha, layer):
            got = sdpa(input_ids=ids).logits[0]
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    assert (plain - ref).abs().max() > 1e-3  # the edit changed something


def test_steer_layer0_equals_inputs_embeds(models):
    sdpa, _, ids, _ = models
    v = np.random.default_rng(7).standard_normal(sdpa.config.hidden_size)
    with torch.no_grad():
        emb = sdpa.model.embed_tokens(ids) + 0.5 * torch.as_tensor(v, dtype=torch.float32)
        ref = sdpa(inputs_embeds=emb).logits
        with steer(sdpa, v, 0.5, 0):
            got = sdpa(input_ids=ids).logits
    assert torch.allclose(got, ref, atol=1e-6)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_patch_equals_manual_two_pass(models, layer):
    sdpa, eager, ids, donor = models
    with torch.no_grad():
        _, dstates = manual_logits(eager, donor)
        state = dstates[layer][-1]

        def put(i, h):
            if i != layer:
                return h
            h = h.clone()
            h[0, -1] = state
            return h

        ref, _ = manual_logits(eager, ids, put)
        with patch_residual(sdpa, layer, state[None].numpy(), position=-1) as st:
            got = sdpa(input_ids=ids).logits[0]
    assert st["calls"] == 1
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()


def test_hooks_removed_also_on_error(models):
    sdpa, _, ids, _ = models
    v = np.ones(sdpa.config.hidden_size)
    with torch.no_grad():
        before = sdpa(input_ids=ids).logits
        with pytest.raises(RuntimeError, match="boom"), steer(sdpa, v, 3.0, 1):
            raise RuntimeError("boom")
        after = sdpa(input_ids=ids).logits
    assert torch.equal(before, after)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in sdpa.modules())


def test_bad_inputs(models):
    from mimicry.errors import InputError

    sdpa, _, ids, _ = models
    with pytest.raises(InputError, match="out of range"), steer(sdpa, np.ones(4), 1.0, 99):
        pass
    with pytest.raises(InputError, match="positions"), steer(sdpa, np.ones(4), 1.0, 1,
                                                              positions="some"):
        pass
    with pytest.raises(InputError, match="dims"), steer(sdpa, np.ones(3), 1.0, 1), \
            torch.no_grad():
        sdpa(input_ids=ids)


@pytest.fixture(scope="module")
def organism():
    pytest.importorskip("nnsight")
    from mimicry.intervene.generation import backend
    from mimicry.tasks.registry import load_suite

    items = [it for it in load_suite("organism") if it.meta.get("k", 0) in (1, 3, 6)][::5]
    if len(items) < 4:
        items = list(load_suite("organism"))[::12]
    return backend(str(ORG / "student_mastery")), items


def test_steered_generation_hf_equals_nnsight(organism):
    from mimicry.intervene import generation, nnsight_path

    be, items = organism
    d = be.model.config.hidden_size
    v = np.random.default_rng(3).standard_normal(d)
    v = v / np.linalg.norm(v)
    base = generation.generate_rows(be, items, max_new_tokens=40, batch_size=8)
    for layer, alpha in ((1, 800.0), (2, -900.0)):  # residual norm ~600-800
        hf = generation.dose_response(be, items, {"v": v}, [alpha], layer, max_new_tokens=40,
                                      batch_size=8)
        hf = hf[hf["direction"] == "v"].reset_index(drop=True)
        nn = nnsight_path.steered_rows(be, items, v, alpha, layer, max_new_tokens=40)
        cols = ["item_id", "reasoning_tokens", "correct", "finish_reason", "closed"]
        assert hf[cols].equals(nn[cols]), (hf[cols], nn[cols])
    # the steering was strong enough to change some generation (else the check is empty)
    assert not base["reasoning_tokens"].equals(hf["reasoning_tokens"]) or \
        not base["correct"].equals(hf["correct"])


def test_patched_generation_hf_equals_nnsight(organism):
    from mimicry.intervene import generation, nnsight_path

    be, items = organism
    rec, don = items[: len(items) // 2], items[len(items) // 2:][: len(items) // 2]
    rec = rec[: len(don)]
    for layer in (1, 2):
        hf = generation.patch_sweep(be, rec, don, [layer], max_new_tokens=40, batch_size=8)
        nn = nnsight_path.patched_rows(be, rec, don, layer, max_new_tokens=40)
        assert hf["tokens_patched"].tolist() == nn["reasoning_tokens"].tolist()
        assert hf["correct_patched"].tolist() == nn["correct"].tolist()


def test_prompt_states_match_manual_loop(organism):
    from mimicry.intervene.generation import prompt_states

    be, items = organism
    S = prompt_states(be, items, batch_size=3)  # left padding inside batches
    eager, tok = load_model(str(ORG / "student_mastery"), dtype="float32",
                            attn_implementation="eager")
    for i, it in enumerate(items):
        ids = torch.tensor([tok(be.render(it, "auto"))["input_ids"]])
        with torch.no_grad():
            _, st = manual_logits(eager, ids)
        ref = torch.stack([s[-1] for s in st]).double().numpy()
        np.testing.assert_allclose(S[i], ref, rtol=1e-5, atol=1e-4)  # norms ~700, fp32
