#!/usr/bin/env python3
"""A llama2.c model and tokenizer written as GGUF by llama.cpp's own Python library (gguf-py,
from the llama.cpp source that node-llama-cpp bundles), optionally quantized by gguf-py's
quantizers: a GGUF "made by llama.cpp's tools" that needs no native build, for Hearth's tests.

Usage: llama2c_to_gguf.py GGUF_PY_DIR MODEL.bin TOKENIZER.bin OUT.gguf [F32|Q8_0|Q4_0]
Layout as llama.cpp's llama-convert-llama2c-to-ggml writes it: llama2.c's rotary pairs are
already llama.cpp's (no reordering), tokens with SentencePiece's visible space, an output tensor.
"""
import struct
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
import gguf  # noqa: E402
from gguf import quants  # noqa: E402


def main():
    _, _, model_path, tok_path, out_path, *rest = sys.argv
    qtype = getattr(gguf.GGMLQuantizationType, rest[0] if rest else "F32")
    data = open(model_path, "rb").read()
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack("<7i", data[:28])
    tied = vocab > 0
    vocab = abs(vocab)
    head = dim // heads
    w = np.frombuffer(data, dtype=np.float32, offset=28)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        t = w[pos:pos + n].reshape(shape)
        pos += n
        return t

    embed = take(vocab, dim)
    attn_norm = take(layers, dim)
    wq, wk = take(layers, dim, dim), take(layers, kv_heads * head, dim)
    wv, wo = take(layers, kv_heads * head, dim), take(layers, dim, dim)
    ffn_norm = take(layers, dim)
    w1, w2, w3 = take(layers, hidden, dim), take(layers, dim, hidden), take(layers, hidden, dim)
    norm = take(dim)
    take(seq_len * head // 2)
    take(seq_len * head // 2)
    output = embed if tied else take(vocab, dim)

    out = gguf.GGUFWriter(out_path, "llama")
    out.add_name("stories260K (gguf-py)")
    out.add_context_length(seq_len)
    out.add_embedding_length(dim)
    out.add_feed_forward_length(hidden)
    out.add_block_count(layers)
    out.add_head_count(heads)
    out.add_head_count_kv(kv_heads)
    out.add_rope_dimension_count(head)
    out.add_layer_norm_rms_eps(1e-5)

    # The llama2.c tokenizer: float score, int32 length, bytes per token.
    tok = open(tok_path, "rb").read()
    p = 4
    tokens, scores, types = [], [], []
    while p < len(tok):
        score, n = struct.unpack("<fi", tok[p:p + 8])
        text = tok[p + 8:p + 8 + n].decode("utf-8", errors="replace")
        p += 8 + n
        i = len(tokens)
        if i == 0:
            text, kind = "<unk>", gguf.TokenType.UNKNOWN
        elif i in (1, 2):
            text, kind = ("<s>" if i == 1 else "</s>"), gguf.TokenType.CONTROL
        elif 3 <= i < 259:
            kind = gguf.TokenType.BYTE
        else:
            kind = gguf.TokenType.NORMAL
        tokens.append(text.replace(" ", "\u2581"))
        scores.append(score)
        types.append(kind)
    out.add_tokenizer_model("llama")
    out.add_token_list(tokens)
    out.add_token_scores(scores)
    out.add_token_types(types)
    out.add_unk_token_id(0)
    out.add_bos_token_id(1)
    out.add_eos_token_id(2)

    def matrix(name, t):
        # gguf-py's quantizers need whole blocks per row; other rows stay F32.
        t = np.ascontiguousarray(t, dtype=np.float32)
        if qtype != gguf.GGMLQuantizationType.F32 and t.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0] == 0:
            out.add_tensor(name, quants.quantize(t, qtype), raw_dtype=qtype)
        else:
            out.add_tensor(name, t)

    matrix("token_embd.weight", embed)
    out.add_tensor("output_norm.weight", np.ascontiguousarray(norm))
    matrix("output.weight", output)
    for i in range(layers):
        matrix(f"blk.{i}.attn_q.weight", wq[i])
        matrix(f"blk.{i}.attn_k.weight", wk[i])
        matrix(f"blk.{i}.attn_v.weight", wv[i])
        matrix(f"blk.{i}.attn_output.weight", wo[i])
        out.add_tensor(f"blk.{i}.attn_norm.weight", np.ascontiguousarray(attn_norm[i]))
        matrix(f"blk.{i}.ffn_gate.weight", w1[i])
        matrix(f"blk.{i}.ffn_down.weight", w2[i])
        matrix(f"blk.{i}.ffn_up.weight", w3[i])
        out.add_tensor(f"blk.{i}.ffn_norm.weight", np.ascontiguousarray(ffn_norm[i]))
    out.write_header_to_file()
    out.write_kv_data_to_file()
    out.write_tensors_to_file()
    out.close()


if __name__ == "__main__":
    main()
