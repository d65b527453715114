#!/usr/bin/env python3
"""Reference beam-search outputs of Hugging Face transformers for tests/unit/test_llm_beam.c.

  make_beam_ref.py SHARED_DIR OUT_JSON [MODEL]
Runs transformers' generate(num_beams=B, do_sample=False) in float32 on the CPU with
../shared/models/MODEL (default llama-small: its golden greedy margins are small, median 0.34,
so beams really compete; qwen2-tiny's are ~17 and every beam search equals greedy) for 8
golden prompts x num_beams {2, 4} x length_penalty
{1.0, 0.5, 2.0} x early_stopping {True, False, "never"}, 12 new tokens, plus a repetition-penalty
case. The random-weight model never emits its EOS (llama-small's is outside its 1,024-token
vocabulary), so each prompt treats the 4th token of its greedy continuation as the
end-of-sequence id (eos_token_id = [that id]): hypotheses then finish early and length_penalty / early_stopping decide. Writes the
generated ids (prompt removed, padding removed) and transformers' sequence score.
"""
import json, sys
import torch
from transformers import AutoModelForCausalLM

shared, out = sys.argv[1], sys.argv[2]
name = sys.argv[3] if len(sys.argv) > 3 else "llama-small"
torch.manual_seed(0)
mdir = shared + "/models/" + name
m = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32).eval()
golden = json.load(open(shared + "/golden/" + name + "_golden.json"))
prompts = [c["ids"] for c in golden["cases"] if 3 <= len(c["ids"]) <= 24][:8]
V = m.config.vocab_size
model_eos = [t for t in ([m.config.eos_token_id] if isinstance(m.config.eos_token_id, int)
                         else list(m.config.eos_token_id or [])) if t < V]
pad = 0
cases = []
with torch.no_grad():
    for pi, ids in enumerate(prompts):
        x = torch.tensor([ids])
        g = m.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=8, do_sample=False,
                       num_beams=1, repetition_penalty=1.0, pad_token_id=pad,
                       eos_token_id=model_eos or None)
        extra = int(g[0][len(ids) + 3])
        configs = [(nb, lp, es, 1.0) for nb in (2, 4) for lp in (1.0, 0.5, 2.0)
                   for es in (True, False, "never")]
        configs.append((3, 1.0, False, 1.3))
        for nb, lp, es, rp in configs:
            r = m.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=12,
                           do_sample=False, num_beams=nb, length_penalty=lp, early_stopping=es,
                           repetition_penalty=rp, eos_token_id=model_eos + [extra],
                           pad_token_id=pad, return_dict_in_generate=True,
                           output_scores=True, top_k=None, top_p=None, temperature=None)
            seq = [int(t) for t in r.sequences[0][len(ids):]]
            # strip padding after the end of sequence
            gen = []
            for t in seq:
                gen.append(t)
                if t in model_eos or t == extra:
                    break
            cases.append({"prompt": ids, "extra_eos": extra, "num_beams": nb,
                          "length_penalty": lp, "early_stopping": es, "repetition_penalty": rp,
                          "max_new_tokens": 12, "ids": gen,
                          "score": float(r.sequences_scores[0])})
import transformers
json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
           "model": name, "dtype": "float32", "cases": cases}, open(out, "w"), indent=0)
print(f"{len(cases)} cases; ended early: {sum(1 for c in cases if len(c['ids']) < 12)}")
