#!/usr/bin/env python3
"""transformers reference on the same model and GPU as cuda_bench (the ratio's denominator).

  hf_bench.py <model_dir> [--rounds N] [--thread-loops L]
Prints: batch-1 greedy decode tok/s (64 new tokens after a 128-token prompt) and the seed
workload with static batches of 5 (2,048-token prompts, 256 new tokens, eos ignored via
min_new_tokens) - `--rounds` of the 4 sequential rounds are run and the total is scaled to 4.
With --thread-loops L > 0 also the seed users' own way: one Python thread per user (5 users),
each running L of its 4 requests one after another (batch 1 each) - the total is scaled to 4.
"""
import sys, time, argparse, threading
import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--rounds", type=int, default=1)
ap.add_argument("--thread-loops", type=int, default=0)
a = ap.parse_args()
m = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16).cuda().eval()
V = m.config.vocab_size
g = torch.Generator().manual_seed(0)


def gen(batch, plen, new):
    ids = torch.randint(0, V, (batch, plen), generator=g).cuda()
    torch.cuda.synchronize()
    t = time.time()
    with torch.no_grad():
        m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                   do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    return time.time() - t


# bf16 matrix rate (the compute roofline for large decode batches and prefill)
A = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
B = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
for _ in range(3):
    A @ B
torch.cuda.synchronize()
e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
e0.record()
for _ in range(10):
    A @ B
e1.record()
torch.cuda.synchronize()
print(f"HF/torch bf16 8192^3 matmul: {2 * 8192 ** 3 * 10 / (e0.elapsed_time(e1) * 1e-3) / 1e12:.0f} TFLOP/s")
del A, B
gen(1, 16, 8)  # warm-up
t = gen(1, 128, 64)
print(f"HF batch-1 decode: {64 / t:.1f} tok/s (64 tokens after a 128-token prompt, {t:.2f} s)")
ts = [gen(5, 2048, 256) for _ in range(a.rounds)]
per = sum(ts) / len(ts)
print(f"HF seed static batches of 5: {per:.2f} s per round of 5 x (2048 + 256); 4 rounds = {4 * per:.1f} s "
      f"({a.rounds} measured), {5 * 256 / per:.0f} output tok/s")
if a.thread_loops > 0:
    def user():
        for _ in range(a.thread_loops):
            ids = torch.randint(0, V, (1, 2048)).cuda()
            with torch.no_grad():
                m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=256,
                           min_new_tokens=256, do_sample=False, pad_token_id=0)
    th = [threading.Thread(target=user) for _ in range(5)]
    t = time.time()
    for x in th:
        x.start()
    for x in th:
        x.join()
    torch.cuda.synchronize()
    t = time.time() - t
    print(f"HF seed threads per user: {t:.1f} s for 5 users x {a.thread_loops} loops; 4 loops = "
          f"{4 * t / a.thread_loops:.1f} s ({a.thread_loops} measured), "
          f"{5 * a.thread_loops * 256 / t:.0f} output tok/s")
