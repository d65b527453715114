# Driven by bench/embed_gpu.sh: ctypes binding of bert_cuda.h, golden check on bert-tiny,
# throughput of the bge-small-zh-shaped model against sentence-transformers fp16 (same GPU).
import ctypes as C, json, time, numpy as np
from safetensors.numpy import load_file

import os, sys
lib = C.CDLL(sys.argv[1])
SHARED = os.environ["RAGD_SHARED"]
FP = C.POINTER(C.c_float)

class Layer(C.Structure):
    _fields_ = [(n, FP) for n in "wqkv bqkv wo bo ln1_g ln1_b w1 b1 w2 b2 ln2_g ln2_b".split()]

class Weights(C.Structure):
    _fields_ = [("hidden", C.c_int), ("layers", C.c_int), ("heads", C.c_int), ("ffn", C.c_int),
                ("vocab", C.c_int), ("max_pos", C.c_int), ("ln_eps", C.c_float),
                ("word", FP), ("pos", FP), ("type", FP), ("emb_g", FP), ("emb_b", FP),
                ("layer", C.POINTER(Layer))]

class Err(C.Structure):
    _fields_ = [("code", C.c_int), ("msg", C.c_char * 512)]

keep = []
def ptr(a):
    a = np.ascontiguousarray(a, dtype=np.float32); keep.append(a)
    return a.ctypes.data_as(FP)

def load(d):
    cfg = json.load(open(d + "/config.json"))
    t = load_file(d + "/model.safetensors")
    g = lambda n: t[n] if n in t else t["bert." + n]
    L = cfg["num_hidden_layers"]
    layers = (Layer * L)()
    for l in range(L):
        p = f"encoder.layer.{l}."
        qkv = np.concatenate([g(p + f"attention.self.{k}.weight") for k in ("query", "key", "value")])
        bqkv = np.concatenate([g(p + f"attention.self.{k}.bias") for k in ("query", "key", "value")])
        layers[l] = Layer(ptr(qkv), ptr(bqkv), ptr(g(p + "attention.output.dense.weight")),
                          ptr(g(p + "attention.output.dense.bias")),
                          ptr(g(p + "attention.output.LayerNorm.weight")),
                          ptr(g(p + "attention.output.LayerNorm.bias")),
                          ptr(g(p + "intermediate.dense.weight")), ptr(g(p + "intermediate.dense.bias")),
                          ptr(g(p + "output.dense.weight")), ptr(g(p + "output.dense.bias")),
                          ptr(g(p + "output.LayerNorm.weight")), ptr(g(p + "output.LayerNorm.bias")))
    keep.append(layers)
    w = Weights(cfg["hidden_size"], L, cfg["num_attention_heads"], cfg["intermediate_size"],
                cfg["vocab_size"], cfg["max_position_embeddings"], cfg.get("layer_norm_eps", 1e-12),
                ptr(g("embeddings.word_embeddings.weight")), ptr(g("embeddings.position_embeddings.weight")),
                ptr(g("embeddings.token_type_embeddings.weight")), ptr(g("embeddings.LayerNorm.weight")),
                ptr(g("embeddings.LayerNorm.bias")), layers)
    h = C.c_void_p(); e = Err()
    rc = lib.ragd_bert_cuda_create(C.byref(w), C.byref(h), C.byref(e))
    assert rc == 0, e.msg
    return h, cfg["hidden_size"]

def forward(h, H, seqs, mean):
    ids = np.ascontiguousarray(np.concatenate(seqs).astype(np.int32))
    lens = np.ascontiguousarray(np.array([len(s) for s in seqs], dtype=np.int32))
    out = np.zeros((len(seqs), H), dtype=np.float32); e = Err()
    rc = lib.ragd_bert_cuda_forward(h, ids.ctypes.data_as(C.POINTER(C.c_int32)),
                                    lens.ctypes.data_as(C.POINTER(C.c_int32)), len(seqs), int(ids.size),
                                    int(mean), 1, out.ctypes.data_as(FP), C.byref(e))
    assert rc == 0, e.msg
    return out

# 1. correctness on bert-tiny
h, H = load(SHARED + "/models/bert-tiny")
gold = json.load(open(SHARED + "/golden/bert-tiny_golden.json"))["cases"]
seqs = [np.array(c["ids"]) for c in gold]
for mean, key in ((0, "cls_normalized"), (1, "mean_normalized")):
    out = forward(h, H, seqs, mean)
    ref = np.array([c[key] for c in gold], dtype=np.float32)
    cos = (out * ref).sum(1)
    one = np.stack([forward(h, H, [s], mean)[0] for s in seqs[::16]])
    print(f"bert-tiny {key}: min cosine {cos.min():.6f}, max abs diff {np.abs(out-ref).max():.3g}, "
          f"batch vs single max diff {np.abs(one - out[::16]).max():.3g}")
    assert cos.min() >= 0.999 and np.abs(one - out[::16]).max() <= 2e-3, "CUDA BERT check failed"

# 2. speed on the bge-small-zh-shaped model, against sentence-transformers fp16, same GPU
from tokenizers import Tokenizer
import torch
tok = Tokenizer.from_file(SHARED + "/models/bert-tiny/tokenizer.json")
tok.enable_truncation(512)
qs = [json.loads(l)["text"] for l in open(SHARED + "/data/cmrc2018/queries.jsonl")]
ps = [json.loads(l)["text"] for l in open(SHARED + "/data/cmrc2018/corpus.jsonl")]
short = [q for q in qs if 19 <= len(tok.encode(q).ids) <= 21][:50]
passages = (ps * 2)[:1000]
g, H = load(sys.argv[2])
def timeit(fn, reps):
    fn(); torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps): fn()
    return (time.perf_counter() - t) / reps
def ours(texts, bs):
    for i in range(0, len(texts), bs):
        forward(g, H, [np.array(tok.encode(x).ids) for x in texts[i:i + bs]], 0)
def ours_pretok(seqs, bs):
    for i in range(0, len(seqs), bs): forward(g, H, seqs[i:i + bs], 0)
qseq = [np.array(tok.encode(x).ids) for x in short]
pseq = [np.array(tok.encode(x).ids) for x in passages]
ntok = sum(len(s) for s in pseq)
t_a = timeit(lambda: ours(short, 64), 20); t_a2 = timeit(lambda: ours_pretok(qseq, 64), 50)
t_b = timeit(lambda: ours(passages, 64), 2); t_b2 = timeit(lambda: ours_pretok(pseq, 64), 3)
print(f"ragd cuda (a) 50 short texts: {t_a*1e3:.2f} ms end to end (HF tokenizer), {t_a2*1e3:.2f} ms forward only")
print(f"ragd cuda (b) 1000 passages ({ntok} tokens) at batch 64: {1000/t_b:.0f} texts/s end to end, "
      f"{1000/t_b2:.0f} texts/s forward only, {ntok/t_b2:.0f} tokens/s")
print(f"ragd cuda short texts at batch 64: {len(qs[:1024])/timeit(lambda: ours(qs[:1024], 64), 2):.0f} texts/s end to end")
try:
    from sentence_transformers import SentenceTransformer
    m = SentenceTransformer(sys.argv[2], device="cuda"); m.half()
    enc = lambda texts: m.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    s_a = timeit(lambda: enc(short), 20); s_b = timeit(lambda: enc(passages), 2)
    s_q = timeit(lambda: enc(qs[:1024]), 2)
    print(f"sentence-transformers fp16 (a) 50 short texts: {s_a*1e3:.2f} ms")
    print(f"sentence-transformers fp16 (b) 1000 passages at batch 64: {1000/s_b:.0f} texts/s; short texts: {1024/s_q:.0f} texts/s")
    # agreement of the two on the random model (our bf16 vs their fp16)
    ref = enc(passages[:64]); out = forward(g, H, pseq[:64], 0)
    print(f"agreement with sentence-transformers on 64 passages: min cosine {(ref*out).sum(1).min():.5f}")
except Exception as ex:
    print("sentence-transformers reference failed:", repr(ex)[:300])
