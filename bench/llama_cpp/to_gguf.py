#!/usr/bin/python3
"""Writes a moert/Hugging Face DeepSeek-V3-architecture checkpoint as a llama.cpp GGUF (architecture deepseek2,
MLA with the split k_b/v_b that llama.cpp's absorbed attention reads), for the side-by-side benchmark in
compare.sh. For the small checkpoints the bench uses: every tensor is held in memory until the file is
written (as gguf-py's writer does), so not for the 671B release. Like llama.cpp's own converter it needs a
q_lora_rank (V3 layouts; V2-Lite's q_proj-only attention does not load in llama.cpp's deepseek2).

Why our own writer: llama.cpp's convert_hf_to_gguf.py needs torch and transformers, which Debian 12 does not
ship (no PyPI here). This reads the safetensors itself (FP8 e4m3 blocks dequantised with weight_scale_inv,
bf16, f32), and writes through gguf-py from the llama.cpp source tree (--gguf-py DIR, pure numpy).

Matrices are written as F16 (llama-quantize then makes Q4_K_M / Q8_0 of them), vectors as F32. The MTP
layers are skipped, as llama.cpp's converter does. With --synthetic-vocab (for random models without a
tokenizer) the vocabulary is 256 byte tokens plus byte pairs: llama-bench feeds random token ids, so only
the vocabulary's size matters there.
"""
import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np


def e4m3_table():
    t = np.zeros(256, dtype=np.float32)
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e = (b >> 3) & 0xF
        m = b & 0x7
        if e == 0xF and m == 0x7:
            t[b] = np.nan
        elif e == 0:
            t[b] = s * (m / 8.0) * 2.0 ** -6
        else:
            t[b] = s * (1.0 + m / 8.0) * 2.0 ** (e - 7)
    return t


E4M3 = e4m3_table()


class Checkpoint:
    def __init__(self, folder: Path):
        self.folder = folder
        self.where = {}
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            sys.exit(f"no .safetensors files in {folder}")
        for f in files:
            with open(f, "rb") as h:
                n = struct.unpack("<Q", h.read(8))[0]
                header = json.loads(h.read(n))
            base = 8 + n
            for name, meta in header.items():
                if name != "__metadata__":
                    self.where[name] = (f, base, meta)
        self.maps = {}

    def has(self, name):
        return name in self.where

    def raw(self, name):
        f, base, meta = self.where[name]
        if f not in self.maps:
            self.maps[f] = np.memmap(f, dtype=np.uint8, mode="r")
        a, b = meta["data_offsets"]
        return self.maps[f][base + a:base + b], meta["dtype"], meta["shape"]

    def f32(self, name):
        data, dtype, shape = self.raw(name)
        if dtype == "F32":
            x = data.view(np.float32).reshape(shape)
        elif dtype == "BF16":
            x = (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
        elif dtype == "F16":
            x = data.view(np.float16).astype(np.float32).reshape(shape)
        elif dtype == "F8_E4M3":
            x = E4M3[data].reshape(shape)
            scale_name = name + "_scale_inv"
            if self.has(scale_name):
                s = self.f32(scale_name)
                rows, cols = shape
                s = np.repeat(np.repeat(s, 128, axis=0)[:rows], 128, axis=1)[:, :cols]
                x = x * s
        else:
            sys.exit(f"{name}: dtype {dtype} is not supported")
        return np.ascontiguousarray(x, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--gguf-py", required=True, type=Path, help="llama.cpp's gguf-py folder")
    ap.add_argument("--synthetic-vocab", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(args.gguf_py))
    import gguf  # noqa: E402

    cfg = json.loads((args.model / "config.json").read_text())
    ck = Checkpoint(args.model)
    layers = cfg["num_hidden_layers"]
    n_head = cfg["num_attention_heads"]
    nope, rope, vdim = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    lora = cfg["kv_lora_rank"]
    experts = cfg["n_routed_experts"]

    w = gguf.GGUFWriter(str(args.out), "deepseek2")
    w.add_name(args.model.name)
    w.add_block_count(layers)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(1)  # MLA as MQA over the latent, as llama.cpp's converter writes it
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000)))
    w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
    w.add_expert_count(experts)
    w.add_expert_used_count(cfg["num_experts_per_tok"])
    if cfg.get("n_group"):
        w.add_expert_group_count(cfg["n_group"])
        w.add_expert_group_used_count(cfg["topk_group"])
    if cfg.get("scoring_func", "softmax") == "sigmoid":
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    else:
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
    w.add_leading_dense_block_count(cfg.get("first_k_dense_replace", 0))
    w.add_vocab_size(cfg["vocab_size"])
    if cfg.get("q_lora_rank"):
        w.add_q_lora_rank(cfg["q_lora_rank"])
    w.add_kv_lora_rank(lora)
    w.add_key_length(lora + rope)
    w.add_value_length(lora)
    w.add_key_length_mla(nope + rope)
    w.add_value_length_mla(vdim)
    w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
    w.add_expert_shared_count(cfg.get("n_shared_experts", 0))
    w.add_expert_weights_scale(float(cfg.get("routed_scaling_factor", 1.0)))
    if cfg.get("norm_topk_prob"):
        w.add_expert_weights_norm(True)
    w.add_rope_dimension_count(rope)
    rs = cfg.get("rope_scaling") or {}
    if rs.get("type", rs.get("rope_type")) == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(rs["factor"]))
        w.add_rope_scaling_orig_ctx_len(rs["original_max_position_embeddings"])
        w.add_rope_scaling_yarn_beta_fast(float(rs.get("beta_fast", 32)))
        w.add_rope_scaling_yarn_beta_slow(float(rs.get("beta_slow", 1)))
        if rs.get("mscale_all_dim") is not None:
            # llama.cpp's deepseek2 loader divides this key by 0.1 (its converter's legacy factor).
            w.add_rope_scaling_yarn_log_mul(0.1 * float(rs["mscale_all_dim"]))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    write_vocab(w, gguf, args.model, cfg, args.synthetic_vocab)

    def matrix(gguf_name, x):
        w.add_tensor(gguf_name, x.astype(np.float16))

    def vector(gguf_name, x):
        w.add_tensor(gguf_name, x.astype(np.float32))

    vector("output_norm.weight", ck.f32("model.norm.weight"))
    matrix("token_embd.weight", ck.f32("model.embed_tokens.weight"))
    if ck.has("lm_head.weight"):
        matrix("output.weight", ck.f32("lm_head.weight"))
    for i in range(layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        vector(b + "attn_norm.weight", ck.f32(p + "input_layernorm.weight"))
        vector(b + "ffn_norm.weight", ck.f32(p + "post_attention_layernorm.weight"))
        a = p + "self_attn."
        if ck.has(a + "q_a_proj.weight"):
            matrix(b + "attn_q_a.weight", ck.f32(a + "q_a_proj.weight"))
            vector(b + "attn_q_a_norm.weight", ck.f32(a + "q_a_layernorm.weight"))
            matrix(b + "attn_q_b.weight", ck.f32(a + "q_b_proj.weight"))
        else:
            matrix(b + "attn_q.weight", ck.f32(a + "q_proj.weight"))
        matrix(b + "attn_kv_a_mqa.weight", ck.f32(a + "kv_a_proj_with_mqa.weight"))
        vector(b + "attn_kv_a_norm.weight", ck.f32(a + "kv_a_layernorm.weight"))
        kv_b = ck.f32(a + "kv_b_proj.weight").reshape(n_head, nope + vdim, lora)
        matrix(b + "attn_k_b.weight", np.ascontiguousarray(kv_b[:, :nope, :].transpose(0, 2, 1)))
        matrix(b + "attn_v_b.weight", np.ascontiguousarray(kv_b[:, nope:, :]))
        matrix(b + "attn_output.weight", ck.f32(a + "o_proj.weight"))
        m = p + "mlp."
        if ck.has(m + "gate.weight"):
            vector(b + "ffn_gate_inp.weight", ck.f32(m + "gate.weight"))
            if ck.has(m + "gate.e_score_correction_bias"):
                vector(b + "exp_probs_b.bias", ck.f32(m + "gate.e_score_correction_bias"))
            for hf, gg in (("gate_proj", "ffn_gate_exps"), ("up_proj", "ffn_up_exps"), ("down_proj", "ffn_down_exps")):
                matrix(b + gg + ".weight",
                       np.stack([ck.f32(f"{m}experts.{e}.{hf}.weight") for e in range(experts)]))
            for hf, gg in (("gate_proj", "ffn_gate_shexp"), ("up_proj", "ffn_up_shexp"), ("down_proj", "ffn_down_shexp")):
                matrix(b + gg + ".weight", ck.f32(f"{m}shared_experts.{hf}.weight"))
        else:
            for hf, gg in (("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down")):
                matrix(b + gg + ".weight", ck.f32(f"{m}{hf}.weight"))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {args.out}")


def write_vocab(w, gguf, folder, cfg, synthetic):
    n = cfg["vocab_size"]
    tok_file = folder / "tokenizer.json"
    if not synthetic and tok_file.exists():
        tj = json.loads(tok_file.read_text())
        vocab = dict(tj["model"]["vocab"])
        special = set()
        for t in tj.get("added_tokens", []):
            vocab[t["content"]] = t["id"]
            if t.get("special"):
                special.add(t["id"])
        by_id = {i: s for s, i in vocab.items()}
        tokens, types = [], []
        for i in range(n):
            if i in by_id:
                tokens.append(by_id[i])
                types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
            else:
                tokens.append(f"[PAD{i}]")
                types.append(gguf.TokenType.UNUSED)
        merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
        pre = "deepseek-v3"
    else:
        # GPT-2's printable stand-ins for the 256 bytes, then byte pairs as merged tokens.
        chars = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 173)] + \
                [chr(c) for c in range(174, 256)]
        chars += [chr(256 + k) for k in range(256 - len(chars))]
        tokens = chars[:]
        merges = []
        k = 0
        while len(tokens) < n - 2:
            a, b = chars[k // 256], chars[k % 256]
            tokens.append(a + b)
            merges.append(f"{a} {b}")
            k += 1
        tokens += ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"]
        types = [gguf.TokenType.NORMAL] * (n - 2) + [gguf.TokenType.CONTROL] * 2
        pre = "deepseek-v3"
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    bos, eos = cfg.get("bos_token_id"), cfg.get("eos_token_id")
    if synthetic or not tok_file.exists():
        bos, eos = n - 2, n - 1
    if bos is not None:
        w.add_bos_token_id(bos)
    if eos is not None:
        w.add_eos_token_id(eos if isinstance(eos, int) else eos[0])
    w.add_add_bos_token(False)


if __name__ == "__main__":
    main()
