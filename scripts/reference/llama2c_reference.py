#!/usr/bin/env python3
"""Independent float64 numpy reference for karpathy/llama2.c models and tokenizers.

This is the yardstick the Hearth C++ engine is compared against. It is written from the
file-format descriptions only (no code taken from other projects) and favours being plain
and readable over being fast. Everything is computed in float64; weights are read as fp32
and widened.

Files understood:
  * model: llama2.c "legacy v0" .bin -- 7 int32 header fields
      (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len),
    a negative vocab_size meaning the classifier is untied and stored at the end, followed
    by fp32 tensors, all matrices row-major [out, in] (y = W x).
  * tokenizer: llama2.c tokenizer.bin -- int32 max_token_length, then per token:
    float32 score, int32 byte length, the bytes.

Sub-commands:
  generate  greedy continuation from BOS
  ppl       perplexity over a text file (protocol in `cmd_ppl`)
  logits    final-position logits for a given token list
"""

import argparse
import json
import math
import struct
import sys
import time

import numpy as np

BOS = 1
EOS = 2
RMS_EPS = 1e-5
ROPE_THETA = 10000.0


# --------------------------------------------------------------------------------------
# Model file
# --------------------------------------------------------------------------------------

class Config:
    def __init__(self, dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len):
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.head_size = dim // n_heads
        self.kv_dim = self.head_size * n_kv_heads

    def __repr__(self):
        return ("Config(dim=%d, hidden_dim=%d, n_layers=%d, n_heads=%d, n_kv_heads=%d, "
                "vocab_size=%d, seq_len=%d)" % (self.dim, self.hidden_dim, self.n_layers,
                                                self.n_heads, self.n_kv_heads,
                                                self.vocab_size, self.seq_len))


class Model:
    """Weights of a llama2.c v0 checkpoint, as float64 numpy arrays."""

    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        header = struct.unpack_from("<7i", raw, 0)
        dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len = header
        shared_classifier = vocab_size > 0
        vocab_size = abs(vocab_size)
        if dim <= 0 or n_heads <= 0 or n_kv_heads <= 0 or dim % n_heads != 0 \
                or n_heads % n_kv_heads != 0:
            raise ValueError("implausible model header: %r" % (header,))
        cfg = Config(dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len)
        self.config = cfg
        self.shared_classifier = shared_classifier

        floats = np.frombuffer(raw, dtype="<f4", offset=7 * 4)
        cursor = [0]

        def take(*shape):
            n = int(np.prod(shape))
            if cursor[0] + n > floats.size:
                raise ValueError("model file too short")
            arr = floats[cursor[0]:cursor[0] + n].reshape(shape).astype(np.float64)
            cursor[0] += n
            return arr

        L, D, H, V, KV = n_layers, dim, hidden_dim, vocab_size, cfg.kv_dim
        self.token_embedding = take(V, D)
        self.rms_att = take(L, D)
        self.wq = take(L, D, D)
        self.wk = take(L, KV, D)
        self.wv = take(L, KV, D)
        self.wo = take(L, D, D)
        self.rms_ffn = take(L, D)
        self.w1 = take(L, H, D)
        self.w2 = take(L, D, H)
        self.w3 = take(L, H, D)
        self.rms_final = take(D)
        # Precomputed RoPE tables stored by the legacy exporter: skipped, we compute our own.
        take(seq_len, cfg.head_size // 2)
        take(seq_len, cfg.head_size // 2)
        if shared_classifier:
            self.wcls = self.token_embedding
        else:
            self.wcls = take(V, D)
        if cursor[0] != floats.size:
            print("warning: %d trailing floats in model file" % (floats.size - cursor[0]),
                  file=sys.stderr)


# --------------------------------------------------------------------------------------
# Forward pass (a whole sequence at once, causal)
# --------------------------------------------------------------------------------------

def rmsnorm(x, weight):
    """x: [T, D]; normalise each row by its root-mean-square, then scale by weight."""
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(ms + RMS_EPS) * weight


def silu(x):
    return x / (1.0 + np.exp(-x))


def rope_tables(n_positions, head_size):
    """cos/sin tables [T, head_size/2]. Pair i of a head (elements 2i, 2i+1) turns by
    angle pos * theta^(-(2i)/head_size)."""
    pair = np.arange(head_size // 2, dtype=np.float64)
    inv_freq = ROPE_THETA ** (-(2.0 * pair) / head_size)
    pos = np.arange(n_positions, dtype=np.float64)
    angle = pos[:, None] * inv_freq[None, :]
    return np.cos(angle), np.sin(angle)


def apply_rope(x, cos, sin):
    """x: [T, n_heads, head_size]; rotate interleaved pairs (x[2i], x[2i+1])."""
    even = x[..., 0::2]
    odd = x[..., 1::2]
    c = cos[:, None, :]
    s = sin[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = even * c - odd * s
    out[..., 1::2] = even * s + odd * c
    return out


def forward(model, tokens):
    """Logits [T, vocab] for every position of `tokens` (positions 0..T-1)."""
    cfg = model.config
    T = len(tokens)
    if T == 0:
        raise ValueError("empty token list")
    if T > cfg.seq_len:
        raise ValueError("sequence of %d tokens exceeds the model's seq_len %d"
                         % (T, cfg.seq_len))
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.min() < 0 or tokens.max() >= cfg.vocab_size:
        raise ValueError("token id out of range")

    hs = cfg.head_size
    nh = cfg.n_heads
    nkv = cfg.n_kv_heads
    group = nh // nkv  # query heads per key/value head
    cos, sin = rope_tables(T, hs)
    causal = np.triu(np.ones((T, T), dtype=bool), k=1)  # True above the diagonal = future
    scale = 1.0 / math.sqrt(hs)

    x = model.token_embedding[tokens]  # [T, D]
    for l in range(cfg.n_layers):
        # ---- attention ----
        xb = rmsnorm(x, model.rms_att[l])
        q = (xb @ model.wq[l].T).reshape(T, nh, hs)
        k = (xb @ model.wk[l].T).reshape(T, nkv, hs)
        v = (xb @ model.wv[l].T).reshape(T, nkv, hs)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)

        # query head h uses key/value head h // group
        kv_index = np.arange(nh) // group
        k_h = k[:, kv_index, :]  # [T, nh, hs]
        v_h = v[:, kv_index, :]
        # scores[h, i, j] = q[i, h] . k[j, h] / sqrt(hs)
        scores = np.einsum("ihd,jhd->hij", q, k_h) * scale
        scores = np.where(causal[None, :, :], -np.inf, scores)
        scores = scores - scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights = weights / weights.sum(axis=-1, keepdims=True)
        att = np.einsum("hij,jhd->ihd", weights, v_h).reshape(T, cfg.dim)
        x = x + att @ model.wo[l].T

        # ---- feed-forward (SwiGLU) ----
        xb = rmsnorm(x, model.rms_ffn[l])
        h1 = xb @ model.w1[l].T
        h3 = xb @ model.w3[l].T
        x = x + (silu(h1) * h3) @ model.w2[l].T

    x = rmsnorm(x, model.rms_final)
    return x @ model.wcls.T


def log_softmax(logits):
    m = logits.max(axis=-1, keepdims=True)
    z = logits - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------

class Tokenizer:
    def __init__(self, path, vocab_size):
        with open(path, "rb") as f:
            raw = f.read()
        (self.max_token_length,) = struct.unpack_from("<i", raw, 0)
        off = 4
        self.pieces = []  # bytes
        self.scores = []
        for _ in range(vocab_size):
            score, n = struct.unpack_from("<fi", raw, off)
            off += 8
            self.pieces.append(raw[off:off + n])
            off += n
            self.scores.append(score)
        self.lookup = {}
        for i, p in enumerate(self.pieces):
            # With duplicate pieces keep the first id (llama2.c's binary search could pick
            # either; the stock tokenizers have no duplicates among mergeable pieces).
            self.lookup.setdefault(p, i)

    def encode(self, text, bos=True, eos=False):
        """text: str or bytes. Mirrors llama2.c run.c encode()."""
        data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
        tokens = []
        if bos:
            tokens.append(BOS)
        if len(data) > 0:
            tokens.append(self.lookup[b" "])  # dummy prefix

        # Split into UTF-8 codepoints: a lead byte plus up to 3 continuation bytes.
        i = 0
        while i < len(data):
            j = i + 1
            while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            piece = data[i:j]
            if piece in self.lookup:
                tokens.append(self.lookup[piece])
            else:
                # byte fallback: <0xXX> tokens occupy ids 3..258
                for b in piece:
                    tokens.append(b + 3)
            i = j

        # Greedy merges: repeatedly merge the best-scoring adjacent pair (first on ties).
        while True:
            best_score = -1e10
            best_index = -1
            best_id = -1
            for k in range(len(tokens) - 1):
                merged = self.pieces[tokens[k]] + self.pieces[tokens[k + 1]]
                mid = self.lookup.get(merged)
                if mid is not None and self.scores[mid] > best_score:
                    best_score = self.scores[mid]
                    best_index = k
                    best_id = mid
            if best_index < 0:
                break
            tokens[best_index:best_index + 2] = [best_id]

        if eos:
            tokens.append(EOS)
        return tokens

    def piece_bytes(self, prev_token, token):
        """Bytes a token contributes to the text, given the token before it."""
        piece = self.pieces[token]
        if prev_token == BOS and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            try:
                return bytes([int(piece[3:5], 16)])
            except ValueError:
                pass
        return piece

    def decode(self, tokens, prev_token=None):
        out = b""
        prev = prev_token
        for t in tokens:
            out += self.piece_bytes(prev, t)
            prev = t
        return out.decode("utf-8", "replace")


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------

def load(args):
    model = Model(args.model)
    tok = Tokenizer(args.tokenizer, model.config.vocab_size)
    return model, tok


def cmd_generate(args):
    model, tok = load(args)
    t0 = time.time()
    steps = min(args.steps, model.config.seq_len)
    seq = [BOS]
    generated = []
    # Like llama2.c with an empty prompt: `steps` positions, each yields one token;
    # generation stops early if the model emits BOS. (The whole prefix is recomputed
    # at each step: simple, and cheap enough for a reference.)
    for _ in range(steps):
        logits = forward(model, seq)[-1]
        nxt = int(np.argmax(logits))
        if nxt == BOS:
            break
        generated.append(nxt)
        seq.append(nxt)
    print("config:", model.config, file=sys.stderr)
    print("tokens:", " ".join(str(t) for t in generated))
    print("text:", tok.decode(generated, prev_token=BOS))
    print("time: %.2fs" % (time.time() - t0), file=sys.stderr)


def cmd_logits(args):
    model, tok = load(args)
    tokens = [int(t) for t in args.tokens.split(",") if t.strip() != ""]
    logits = forward(model, tokens)[-1]
    if args.json:
        print(json.dumps([float(v) for v in logits]))
        return
    for i, v in enumerate(logits):
        print("%d %.17g" % (i, v))
    top = np.argsort(-logits, kind="stable")[:5]
    print("top5:", ", ".join("%d(%r) %.6f" % (t, tok.pieces[t].decode("utf-8", "replace"),
                                              logits[t]) for t in top), file=sys.stderr)


def cmd_ppl(args):
    """Perplexity protocol:
      * split the text on '\\n'; skip empty lines (no other stripping);
      * encode each line on its own with BOS and the dummy-prefix space;
      * concatenate the token streams;
      * cut non-overlapping windows of ctx+1 tokens (stride ctx+1; a trailing partial
        window is dropped); in each window, token i+1 is predicted from tokens 0..i,
        with a fresh context per window -> ctx predictions per window;
      * perplexity = exp(mean negative log-likelihood over all predictions).
    """
    model, tok = load(args)
    ctx = args.ctx
    if ctx < 1:
        raise SystemExit("--ctx must be >= 1")
    if ctx > model.config.seq_len:
        raise SystemExit("--ctx %d exceeds the model's seq_len %d" % (ctx, model.config.seq_len))
    t0 = time.time()
    with open(args.data, "rb") as f:
        text = f.read().decode("utf-8", "surrogateescape")
    stream = []
    n_lines = 0
    for line in text.split("\n"):
        if line == "":
            continue
        n_lines += 1
        stream.extend(tok.encode(line, bos=True))
    t_tok = time.time() - t0

    win = ctx + 1
    n_windows = len(stream) // win
    total_nll = 0.0
    n_scored = 0
    for w in range(n_windows):
        window = stream[w * win:(w + 1) * win]
        logp = log_softmax(forward(model, window[:ctx]))  # [ctx, vocab]
        targets = np.asarray(window[1:], dtype=np.int64)
        total_nll += -float(logp[np.arange(ctx), targets].sum())
        n_scored += ctx
        if args.progress and (w + 1) % 50 == 0:
            print("  window %d/%d  running ppl %.6f" % (w + 1, n_windows,
                                                      math.exp(total_nll / n_scored)),
                  file=sys.stderr)
    if n_scored == 0:
        raise SystemExit("not enough tokens for one window of %d" % win)
    mean_nll = total_nll / n_scored
    ppl = math.exp(mean_nll)
    print("lines: %d  tokens in stream: %d  windows: %d x %d" % (n_lines, len(stream),
                                                                 n_windows, win))
    print("tokens scored: %d" % n_scored)
    print("mean nll: %.12f" % mean_nll)
    print("perplexity: %.12f" % ppl)
    print("time: tokenize %.1fs, total %.1fs" % (t_tok, time.time() - t0), file=sys.stderr)
    if args.json:
        print(json.dumps({"ppl": ppl, "tokens": n_scored}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--model", required=True, help="llama2.c v0 .bin model")
        p.add_argument("--tokenizer", required=True, help="llama2.c tokenizer.bin")

    g = sub.add_parser("generate", help="greedy continuation from BOS")
    common(g)
    g.add_argument("--steps", type=int, default=40)
    g.set_defaults(func=cmd_generate)

    p = sub.add_parser("ppl", help="perplexity over a text file")
    common(p)
    p.add_argument("--data", required=True)
    p.add_argument("--ctx", type=int, required=True)
    p.add_argument("--json", action="store_true", help='last line {"ppl":..., "tokens":...}')
    p.add_argument("--progress", action="store_true")
    p.set_defaults(func=cmd_ppl)

    lg = sub.add_parser("logits", help="final-position logits for a token list")
    common(lg)
    lg.add_argument("--tokens", required=True, help="comma-separated ids, e.g. 1,2,3")
    lg.add_argument("--json", action="store_true", help="print one JSON list instead")
    lg.set_defaults(func=cmd_logits)

    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
