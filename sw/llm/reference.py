"""llama.cpp as the reference of accelkit's llama path (llama-cpp-python 0.3.36, optional).

Three comparisons, all on the same GGUF:

* :func:`compare_matmuls` - every MUL_MAT node whose first operand is a model weight, read inside
  llama.cpp through its eval callback (``cb_eval`` in the context parameters, low-level ctypes API): the
  node's own float32 input goes through accelkit's MatMul hook (``HostMatMul`` or ``AcceleratorMatMul``)
  and the result is compared with llama.cpp's output, ``max|ours - theirs| / max|theirs|`` per node.
  The weight is looked up by the node's operand name (llama.cpp repacks Q4_0 in memory, so its bytes are
  not the file's).
* :func:`logits` - llama.cpp's logits for every position, the prompt as one batch or token by token.
* :func:`agreement` - top-1 agreement and mean KL divergence of two logit sets; used for accelkit against
  llama.cpp and, to calibrate the bound, for llama.cpp batched against llama.cpp token by token.

``ggml_tensor`` is declared here for ggml 0.25.3 (the one llama-cpp-python 0.3.36 bundles) and checked at
run time against ggml's own accessors (name and byte size of the first node), so another layout is an error
and never misread data.
"""

import ctypes

import numpy as np

from ...errors import AccelkitError

__all__ = ["LLAMA_CPP_VERSION", "llama_cpp_module", "LlamaCpp", "compare_matmuls", "logits", "agreement",
           "log_softmax", "calibrated_bounds", "within_bounds", "ulp_nudged", "combined_spread", "LlamaCppError", "FACTOR", "KL_FLOOR",
           "TOP1_FLOOR"]

#: the version whose ggml_tensor layout this module declares
LLAMA_CPP_VERSION = "0.3.36"


class LlamaCppError(AccelkitError):
    """llama.cpp could not be used as the reference (absent, another version, a failed call)."""


def llama_cpp_module():
    """The ``llama_cpp`` module, or None when llama-cpp-python is not installed."""
    try:
        import llama_cpp
    except ImportError:
        return None
    return llama_cpp


_MAX_DIMS, _MAX_SRC, _MAX_OP_PARAMS, _MAX_NAME = 4, 10, 64, 64
_GGML_TYPE_F32 = 0


class _GgmlTensor(ctypes.Structure):
    """``struct ggml_tensor`` of ggml 0.25.3 (ggml.h)."""


_GgmlTensor._fields_ = [
    ("type", ctypes.c_int),
    ("buffer", ctypes.c_void_p),
    ("ne", ctypes.c_int64 * _MAX_DIMS),
    ("nb", ctypes.c_size_t * _MAX_DIMS),
    ("op", ctypes.c_int),
    ("op_params", ctypes.c_int32 * (_MAX_OP_PARAMS // 4)),
    ("flags", ctypes.c_int32),
    ("src", ctypes.POINTER(_GgmlTensor) * _MAX_SRC),
    ("view_src", ctypes.POINTER(_GgmlTensor)),
    ("view_offs", ctypes.c_size_t),
    ("data", ctypes.c_void_p),
    ("name", ctypes.c_char * _MAX_NAME),
    ("extra", ctypes.c_void_p),
    ("padding", ctypes.c_char * 8),
]


def _ggml_library(llama_cpp):
    from llama_cpp import _ggml
    lib = _ggml.libggml
    lib.ggml_op_name.argtypes, lib.ggml_op_name.restype = [ctypes.c_int], ctypes.c_char_p
    lib.ggml_get_name.argtypes, lib.ggml_get_name.restype = [ctypes.c_void_p], ctypes.c_char_p
    lib.ggml_nbytes.argtypes, lib.ggml_nbytes.restype = [ctypes.c_void_p], ctypes.c_size_t
    return lib


def _float_array(tensor):
    """A copy of an F32 tensor's data as numpy (ne reversed: (ne3, ne2, ne1, ne0)), following its strides."""
    ne = [int(v) for v in tensor.ne]
    nb = [int(v) for v in tensor.nb]
    count = (sum((n - 1) * b for n, b in zip(ne, nb)) + 4) // 4
    flat = np.ctypeslib.as_array(ctypes.cast(tensor.data, ctypes.POINTER(ctypes.c_float)), shape=(count,))
    return np.array(np.lib.stride_tricks.as_strided(flat, shape=ne[::-1], strides=nb[::-1]), dtype=np.float32)


_QUIET = []


def _silence(lc):
    """Route llama.cpp's log to nowhere, once per process (the callback must outlive every context)."""
    if not _QUIET:
        _QUIET.append(lc.llama_log_callback(lambda level, text, user: None))
        lc.llama_log_set(_QUIET[0], ctypes.c_void_p())


class LlamaCpp:
    """One llama.cpp model and context through the low-level API: F32 KV cache, no flash attention,
    ``threads`` CPU threads, an optional eval callback ``callback(tensor, ask) -> bool`` (tensor a
    ``_GgmlTensor``)."""

    def __init__(self, path, *, n_ctx=256, threads=1, callback=None):
        lc = llama_cpp_module()
        if lc is None:
            raise LlamaCppError("llama-cpp-python is not installed (the optional extra `llama`)")
        if getattr(lc, "__version__", "?") != LLAMA_CPP_VERSION:
            raise LlamaCppError(f"llama-cpp-python {lc.__version__} is installed; accelkit's comparison "
                                 f"declares ggml_tensor for {LLAMA_CPP_VERSION} (pyproject's `llama` extra)")
        self.lc, self.n_ctx, self.threads = lc, n_ctx, threads
        lc.llama_backend_init()
        _silence(lc)
        self.model = lc.llama_model_load_from_file(str(path).encode(), lc.llama_model_default_params())
        if not self.model:
            raise LlamaCppError(f"llama.cpp could not load {path}")
        params = lc.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = n_ctx
        params.n_threads = params.n_threads_batch = threads
        params.type_k = params.type_v = _GGML_TYPE_F32
        params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._callback = None
        if callback is not None:
            def trampoline(pointer, ask, user):
                try:
                    return bool(callback(ctypes.cast(pointer, ctypes.POINTER(_GgmlTensor)).contents, ask))
                except Exception as error:     # an exception must not cross into C: keep it for decode()
                    self._error = error
                    return False
            self._callback = lc.ggml_backend_sched_eval_callback(trampoline)
            params.cb_eval = self._callback
        self._error = None
        self.ctx = lc.llama_init_from_model(self.model, params)
        if not self.ctx:
            lc.llama_model_free(self.model)
            raise LlamaCppError(f"llama.cpp could not create a context for {path}")
        self.vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        self.position = 0

    def clear(self):
        """Empty the KV cache (the next decode starts at position 0)."""
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)
        self.position = 0

    def decode(self, tokens):
        """Run ``tokens`` as one batch at the next positions; float32 logits (len(tokens), vocab)."""
        lc, tokens = self.lc, [int(t) for t in tokens]
        if self.position + len(tokens) > self.n_ctx:
            raise LlamaCppError(f"{self.position + len(tokens)} positions exceed the context of {self.n_ctx}")
        batch = lc.llama_batch_init(len(tokens), 0, 1)
        try:
            for i, token in enumerate(tokens):
                batch.token[i], batch.pos[i] = token, self.position + i
                batch.n_seq_id[i], batch.seq_id[i][0], batch.logits[i] = 1, 0, 1
            batch.n_tokens = len(tokens)
            status = lc.llama_decode(self.ctx, batch)
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if status != 0:
                raise LlamaCppError(f"llama_decode returned {status}")
            out = np.empty((len(tokens), self.vocab), np.float32)
            for i in range(len(tokens)):
                out[i] = np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, i), shape=(self.vocab,))
        finally:
            lc.llama_batch_free(batch)
        self.position += len(tokens)
        return out

    def close(self):
        if self.ctx:
            self.lc.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            self.lc.llama_model_free(self.model)
            self.model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def logits(path, tokens, *, batched=True, threads=1):
    """llama.cpp's logits (len(tokens), vocab) for ``tokens``: one batch, or one token per decode."""
    with LlamaCpp(path, n_ctx=max(16, len(tokens)), threads=threads) as run:
        if batched:
            return run.decode(tokens)
        return np.concatenate([run.decode([t]) for t in tokens])


def log_softmax(values):
    z = np.asarray(values, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def agreement(reference, other):
    """Top-1 agreement, mean and max KL(reference || other) and max |difference| of two logit sets
    (positions, vocab)."""
    reference, other = np.asarray(reference), np.asarray(other)
    p, q = log_softmax(reference), log_softmax(other)
    kl = (np.exp(p) * (p - q)).sum(axis=-1)
    return {"positions": int(reference.shape[0]),
            "top1_agreement": float((reference.argmax(axis=-1) == other.argmax(axis=-1)).mean()),
            "mean_kl": float(kl.mean()), "max_kl": float(kl.max()),
            "max_abs_logit_difference": float(np.abs(reference.astype(np.float64) - other).max())}


#: the statistical bounds, calibrated on two spreads of the same ids: llama.cpp against itself (one batch
#: against token by token: other kernels, other activation-quantization rounding) and accelkit against itself
#: with every MatMul input nudged by one ulp in a seeded random direction (:func:`ulp_nudged`), which stands
#: for the ulp-level differences of the operations around the MatMuls (attention, SiLU, RMSNorm): both flip
#: activation-quantization LSBs that cascade through the layers. llama.cpp's own spread alone is no bound:
#: it is exactly 0 for SmolLM2 Q8_0 (its kernels do not depend on the batch there) while accelkit's
#: differences from it are not. accelkit may diverge from llama.cpp FACTOR times the larger spread, in mean KL
#: and in top-1 disagreement (1 - agreement), never less than the floors (a spread of zero: the tiny model).
FACTOR, KL_FLOOR, TOP1_FLOOR = 5.0, 1e-6, 0.05


def ulp_nudged(matmul, seed=0):
    """``matmul`` with each input element moved one float32 ulp up or down (seeded random direction)."""
    rng = np.random.default_rng(seed)

    def nudged(weight, x):
        up = rng.random(x.shape) < 0.5
        return matmul(weight, np.nextafter(x, np.where(up, np.float32(np.inf), np.float32(-np.inf))).astype(np.float32))
    return nudged


def combined_spread(*spreads):
    """The larger spread of several :func:`agreement` results (largest mean KL, lowest top-1 agreement)."""
    return {"mean_kl": max(s["mean_kl"] for s in spreads),
            "top1_agreement": min(s["top1_agreement"] for s in spreads)}


def calibrated_bounds(spread):
    """The bounds for accelkit against llama.cpp, from a spread (:func:`agreement`, :func:`combined_spread`)."""
    return {"max_mean_kl": max(FACTOR * spread["mean_kl"], KL_FLOOR),
            "min_top1_agreement": 1 - max(FACTOR * (1 - spread["top1_agreement"]), TOP1_FLOOR)}


def within_bounds(result, bounds):
    return result["mean_kl"] <= bounds["max_mean_kl"] and result["top1_agreement"] >= bounds["min_top1_agreement"]


def compare_matmuls(path, tokens, matmul, model, *, threads=1):
    """Every weight MUL_MAT llama.cpp runs for ``tokens`` (one batch), recomputed by ``matmul(weight, x)`` on
    llama.cpp's own input. Returns one dict per node in execution order (name, format, tokens, rows, columns,
    max_abs_error, max_abs_output, relative_error) and the count of other MUL_MAT nodes (attention's, whose
    first operand is the KV cache: accelkit computes attention on the host in float)."""
    lc = llama_cpp_module()
    if lc is None:
        raise LlamaCppError("llama-cpp-python is not installed (the optional extra `llama`)")
    ggml = _ggml_library(lc)
    mul_mat = next((op for op in range(128) if ggml.ggml_op_name(op) == b"MUL_MAT"), None)
    if mul_mat is None:
        raise LlamaCppError("ggml has no MUL_MAT op name")
    captured, other, checked = [], [0], [False]

    def callback(tensor, ask):
        if ask:
            return tensor.op == mul_mat
        if not checked[0]:
            address = ctypes.addressof(tensor)
            if ggml.ggml_get_name(address) != tensor.name or ggml.ggml_nbytes(address) != 4 * int(np.prod(
                    [int(v) for v in tensor.ne])) or tensor.type != _GGML_TYPE_F32:
                raise LlamaCppError("ggml_tensor's layout is not ggml 0.25.3's (llama-cpp-python "
                                     f"{LLAMA_CPP_VERSION}): the per-MatMul comparison cannot read nodes")
            checked[0] = True
        weight, x = tensor.src[0].contents, tensor.src[1].contents
        name = weight.name.decode()
        if name not in model.weights or x.type != _GGML_TYPE_F32:
            other[0] += 1
            return True
        captured.append((name, _float_array(x), _float_array(tensor)))
        return True

    with LlamaCpp(path, n_ctx=max(16, len(tokens)), threads=threads, callback=callback) as run:
        run.decode(tokens)
    rows = []
    for name, x, theirs in captured:
        weight = model.output if name in ("token_embd.weight", "output.weight") else model.weights[name]
        x2 = x.reshape(-1, x.shape[-1])
        theirs = theirs.reshape(-1, theirs.shape[-1])
        ours = np.asarray(matmul(weight, x2), dtype=np.float32)
        error = float(np.abs(ours.astype(np.float64) - theirs).max())
        peak = float(np.abs(theirs).max())
        rows.append({"name": name, "format": weight.type_name, "tokens": x2.shape[0], "rows": weight.shape[0],
                     "columns": weight.shape[1], "max_abs_error": error, "max_abs_output": peak,
                     "relative_error": error / peak if peak else error})
    return rows, other[0]
