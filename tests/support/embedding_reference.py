"""Reference vectors for the local BERT loader's parity test.

An independent forward pass of a BERT sentence encoder in numpy (no torch,
no AiCockpit code): the model's own `tokenizer.json` through the `tokenizers`
package with truncation at 256 and no padding, six encoder layers, mean
pooling over the tokens, L2 normalisation.

    python3 -m venv venv && venv/bin/pip install numpy safetensors tokenizers
    venv/bin/python tests/support/embedding_reference.py MODEL_DIR > \
        crates/aicockpit-embed/tests/fixtures/minilm_reference.json

MODEL_DIR holds config.json, tokenizer.json and model.safetensors (what
`aicockpit model install` puts in place).
"""

import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

# Short and long, prose and code, ASCII and not, one past the 256-token cut.
TEXTS = [
    "where do we retry a failed upload",
    "def add(a, b):\n    return a + b\n",
    "Über die Brücke: naïve café résumé — 東京",
    "fn main() {\n    println!(\"hello, world\");\n}\n",
    "x",
    " ".join(f"token{i} value" for i in range(200)),
]


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def embed(model_dir, text):
    config = json.load(open(f"{model_dir}/config.json"))
    weights = load_file(f"{model_dir}/model.safetensors")
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
    w = lambda name: weights[prefix + name].astype(np.float64)
    tokenizer = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tokenizer.enable_truncation(256)
    tokenizer.no_padding()
    ids = tokenizer.encode(text).ids
    n = len(ids)
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    d = hidden // heads
    x = (
        w("embeddings.word_embeddings.weight")[ids]
        + w("embeddings.position_embeddings.weight")[:n]
        + w("embeddings.token_type_embeddings.weight")[0]
    )
    x = layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps)
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        dense = lambda name, v: v @ w(p + name + ".weight").T + w(p + name + ".bias")
        q = dense("attention.self.query", x).reshape(n, heads, d).transpose(1, 0, 2)
        k = dense("attention.self.key", x).reshape(n, heads, d).transpose(1, 0, 2)
        v = dense("attention.self.value", x).reshape(n, heads, d).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(n, hidden)
        x = layer_norm(
            dense("attention.output.dense", context) + x,
            w(p + "attention.output.LayerNorm.weight"),
            w(p + "attention.output.LayerNorm.bias"),
            eps,
        )
        inner = gelu(dense("intermediate.dense", x))
        x = layer_norm(
            dense("output.dense", inner) + x,
            w(p + "output.LayerNorm.weight"),
            w(p + "output.LayerNorm.bias"),
            eps,
        )
    pooled = x.mean(0)
    return ids, pooled / np.linalg.norm(pooled)


def main():
    model_dir = sys.argv[1]
    cases = []
    for text in TEXTS:
        ids, vector = embed(model_dir, text)
        cases.append({"text": text, "tokens": len(ids), "vector": [round(float(v), 7) for v in vector]})
    json.dump({"model": "all-MiniLM-L6-v2", "cases": cases}, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
