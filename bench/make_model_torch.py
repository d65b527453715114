#!/usr/bin/env python3
"""Write a random bf16 decoder in Hugging Face layout with torch on the GPU (fast for 7B shapes).

Same tensor names, shapes and distributions as ../shared/tools/make_random_model.py (whose
presets and spec it imports), sharded like real checkpoints.
  make_model_torch.py --tools /path/to/shared/tools --preset qwen2.5-7b --out /tmp/q7b
"""
import argparse, json, os, sys

ap = argparse.ArgumentParser()
ap.add_argument("--tools", required=True)
ap.add_argument("--preset", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--shard-gb", type=float, default=4.0)
a = ap.parse_args()
sys.path.insert(0, a.tools)
import make_random_model as mrm  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

c = dict(mrm.PRESETS[a.preset])
c["torch_dtype"] = "bfloat16"
os.makedirs(a.out, exist_ok=True)
json.dump(c, open(os.path.join(a.out, "config.json"), "w"), indent=2)
g = torch.Generator(device="cuda").manual_seed(0)
shards, cur, cur_bytes, weight_map = [], {}, 0, {}
for name, shape, mean, sd in mrm.decoder_spec(c, c.get("model_type") == "qwen2"):
    t = torch.randn(shape, generator=g, device="cuda", dtype=torch.float32).mul_(sd).add_(mean)
    t = t.to(torch.bfloat16).cpu()
    nb = t.numel() * 2
    if cur and cur_bytes + nb > a.shard_gb * 1e9:
        shards.append(cur)
        cur, cur_bytes = {}, 0
    cur[name] = t
    cur_bytes += nb
shards.append(cur)
total = 0
for i, sh in enumerate(shards):
    fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" if len(shards) > 1 else "model.safetensors"
    save_file(sh, os.path.join(a.out, fn), metadata={"format": "pt"})
    for k, v in sh.items():
        weight_map[k] = fn
        total += v.numel() * 2
if len(shards) > 1:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=2)
print(f"wrote {a.out}: {total / 1e9:.2f} GB in {len(shards)} file(s)")
