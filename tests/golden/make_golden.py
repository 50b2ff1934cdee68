#!/usr/bin/env python3
"""Makes the golden fixtures: tiny random-weight Hugging Face Llama checkpoints
and the logits and greedy tokens that transformers computes for them.

Runs where torch + transformers are installed (the GPU machine; the reference
runs on its CPU in float32, so no TF32 or reduced-precision kernel is involved):

    python3 tests/golden/make_golden.py --out tests/golden/fixtures

Per variant it writes <out>/<name>/:
  config.json, model.safetensors   the checkpoint (float32 weights)
  reference.safetensors            input_ids int64 [T], logits float32 [T, V]
  greedy.json                      prompt ids and 24 greedy continuation ids

Weights are drawn wider than transformers' init (std 0.02) so that logits
are spread out. Input tokens are drawn so that every row's top-2 gap is at
least BF16_SAFE_GAP of the row's RMS, and the greedy path's gaps are >= 1e-3,
so that a top-1 comparison cannot flip on rounding noise (f32 on the CPU, bf16
on CUDA); a variant whose rows miss that is re-drawn with the next seed.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

SEQ_LEN = 48
PROMPT_LEN = 8
GREEDY_TOKENS = 24
VOCAB = 512

VARIANTS = {
    # Head dims are the real models' (64 for 1B, 128 for 3B/8B/70B), which the CUDA
    # attention kernels require, on a hidden size of 64 (head_dim is independent of
    # hidden / heads) so that each checkpoint stays under 1 MB.
    # Llama 2: MHA, theta 1e4, eps 1e-6, untied; config in the classic hub form.
    "llama2": dict(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=2,
                   num_key_value_heads=2, head_dim=64, rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None,
                   tie_word_embeddings=False, classic=True),
    # CodeLlama: theta 1e6, eps 1e-5, head_dim 128.
    "codellama": dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, head_dim=128, rms_norm_eps=1e-5, rope_theta=1e6, rope_scaling=None,
                      tie_word_embeddings=False, classic=True),
    # Llama 3.1: GQA 4:1 (4 heads of 64, 1 KV head), llama3 rope scaling with
    # original_max_position_embeddings 64 so that, with theta 5e5, the 32
    # frequencies fall in all three bands (wavelength < 16 unchanged, 16..64
    # smoothed, > 64 scaled) inside the test length.
    "llama31": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=1, head_dim=64, rms_norm_eps=1e-5, rope_theta=500000.0,
                    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                    tie_word_embeddings=False, classic=False),
    # Llama 3.2: tied embeddings, MQA (one KV head), llama3 scaling.
    "llama32": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=1, head_dim=64, rms_norm_eps=1e-5, rope_theta=500000.0,
                    rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                    tie_word_embeddings=True, classic=False),
    # Attention and MLP biases, linear rope scaling, GQA 2:1.
    "bias_linear": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                        num_key_value_heads=1, head_dim=64, rms_norm_eps=1e-6, rope_theta=10000.0,
                        rope_scaling={"rope_type": "linear", "factor": 2.0}, attention_bias=True, mlp_bias=True,
                        tie_word_embeddings=False, classic=True),
}


def build(name, spec, seed):
    spec = dict(spec)
    classic = spec.pop("classic")
    rope_theta = spec.pop("rope_theta")
    rope_scaling = spec.pop("rope_scaling")
    rope_parameters = {"rope_type": "default", "rope_theta": rope_theta}
    if rope_scaling:
        rope_parameters.update(rope_scaling)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
                         rope_parameters=rope_parameters, **spec)
    model = LlamaForCausalLM(config).float().eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    return model, classic, rope_theta, rope_scaling


# A reference top-1 is only comparable when rounding cannot flip it: every row's
# top-2 gap must be at least this fraction of the row's RMS. bf16 compute moves
# logits by about 0.5% of the RMS (2e-2 is the stated relative-error bound), so
# 5% leaves a wide berth; random tokens give such a gap ~85% of the time.
BF16_SAFE_GAP = 0.05


def gap_ratio(rows):
    top2 = rows.topk(2, dim=-1).values
    return (top2[:, 0] - top2[:, 1]) / rows.pow(2).mean(dim=-1).sqrt()


def pick_input_ids(model, g):
    """Random tokens, each redrawn (a few times at most) until the row it ends
    has a bf16-safe top-2 gap, so the fixture's top-1 is resolvable in bf16."""
    ids = []
    for _ in range(SEQ_LEN):
        for _attempt in range(64):
            cand = int(torch.randint(3, VOCAB, (1,), generator=g))
            if float(gap_ratio(logits_of(model, ids + [cand])[-1:])[0]) >= BF16_SAFE_GAP:
                break
        ids.append(cand)
    return ids


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def greedy(model, prompt):
    ids = list(prompt)
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True)
        past = out.past_key_values
        for _ in range(GREEDY_TOKENS):
            nxt = int(out.logits[0, -1].argmax())
            ids.append(nxt)
            out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
    return ids[len(prompt):]


def classic_config(path, rope_theta, rope_scaling):
    """Rewrites config.json in the form hub checkpoints ship (rope_theta + rope_scaling)."""
    with open(path) as f:
        cfg = json.load(f)
    cfg.pop("rope_parameters", None)
    cfg["rope_theta"] = rope_theta
    cfg["rope_scaling"] = rope_scaling
    cfg["torch_dtype"] = cfg.pop("dtype", "float32")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(8)
    for name, spec in VARIANTS.items():
        for seed in range(100):
            model, classic, rope_theta, rope_scaling = build(name, spec, seed)
            g = torch.Generator().manual_seed(1000 + seed)
            ids = pick_input_ids(model, g)
            logits = logits_of(model, ids)
            if float(gap_ratio(logits).min()) < BF16_SAFE_GAP:
                continue
            top2 = logits.topk(2, dim=-1).values
            margin = float((top2[:, 0] - top2[:, 1]).min())
            prompt = ids[:PROMPT_LEN]
            gen = greedy(model, prompt)
            # The greedy path's own margins must be safe too.
            full = logits_of(model, prompt + gen)[PROMPT_LEN - 1:-1]
            t2 = full.topk(2, dim=-1).values
            margin = min(margin, float((t2[:, 0] - t2[:, 1]).min()))
            if margin >= 1e-3:
                break
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        model.save_pretrained(d, safe_serialization=True)
        if classic:
            classic_config(os.path.join(d, "config.json"), rope_theta, rope_scaling)
        save_file({"input_ids": torch.tensor(ids, dtype=torch.int64), "logits": logits.contiguous()},
                  os.path.join(d, "reference.safetensors"))
        with open(os.path.join(d, "greedy.json"), "w") as f:
            json.dump({"prompt_ids": prompt, "generated_ids": gen, "seed": seed, "min_top2_margin": margin}, f)
        for extra in ("generation_config.json",):
            p = os.path.join(d, extra)
            if os.path.exists(p):
                os.remove(p)
        print(f"{name}: seed {seed}, margin {margin:.4f}, {sum(p.numel() for p in model.parameters())} params")


if __name__ == "__main__":
    main()
