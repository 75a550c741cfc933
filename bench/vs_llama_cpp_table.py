"""Prints the table of bench/vs_llama_cpp.sh from its per-round JSON and RSS files (medians)."""
import json
import statistics
import sys

out, archs, rounds, busy = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4] == "1"


def hearth(arch, mode, r):
    with open(f"{out}/{arch}.{mode}.{r}.hearth.json") as f:
        j = json.loads(f.read().strip().splitlines()[-1])
    return j["decode_tok_s"], j["prefill_tok_s"]


def llama(arch, mode, r):
    with open(f"{out}/{arch}.{mode}.{r}.llama.json") as f:
        runs = json.load(f)
    decode = next(x["avg_ts"] for x in runs if x["n_gen"] > 0 and x["n_prompt"] == 0)
    prefill = next(x["avg_ts"] for x in runs if x["n_prompt"] > 0 and x["n_gen"] == 0)
    return decode, prefill


def rss_mb(arch, mode, r, who):
    with open(f"{out}/{arch}.{mode}.{r}.{who}.rss") as f:
        return int(f.read().split()[-1]) / 1024


def medians(fn, arch, mode):
    rows = [fn(arch, mode, r) for r in range(1, rounds + 1)]
    return [statistics.median(col) for col in zip(*rows)], rows


print(f"\n{'shape':<14}{'mode':<7}{'Hearth nf4 dec':>15}{'llama Q4_0 dec':>15}{'ratio':>7}"
      f"{'Hearth pre128':>14}{'llama pre128':>13}{'ratio':>7}{'Hearth RSS MB':>14}{'llama RSS MB':>13}")
quiet = {}
for arch in archs:
    for mode in ["quiet"] + (["busy"] if busy else []):
        (hd, hp), hrows = medians(hearth, arch, mode)
        (ld, lp), lrows = medians(llama, arch, mode)
        hr = max(rss_mb(arch, mode, r, "hearth") for r in range(1, rounds + 1))
        lr = max(rss_mb(arch, mode, r, "llama") for r in range(1, rounds + 1))
        print(f"{arch:<14}{mode:<7}{hd:15.1f}{ld:15.1f}{hd / ld:6.2f}x{hp:14.1f}{lp:13.1f}{hp / lp:6.2f}x{hr:14.0f}{lr:13.0f}")
        print(f"{'':<21}rounds: Hearth decode {[round(x[0], 1) for x in hrows]}, llama.cpp decode {[round(x[0], 1) for x in lrows]}")
        if mode == "quiet":
            quiet[arch] = (hd, ld)
        else:
            print(f"{'':<21}busy / quiet decode: Hearth {hd / quiet[arch][0]:.2f}, llama.cpp {ld / quiet[arch][1]:.2f}")
print("\nHearth RSS: the whole bench_decode child (load, warm-up, 3 prefills and 6 decodes); llama.cpp: llama-bench.")
