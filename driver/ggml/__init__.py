"""llama.cpp (ggml) quantized block formats: declarative specs, generic codec, integer block dot products."""

from .formats import (Bits, Codes, BlockFormat, interleaved, FORMATS, WEIGHT_FORMATS, ACTIVATION_FORMATS,
                      get_format, format_of_type)
from .codec import Unpacked, as_blocks, unpack, dequantize, encode, pack, random_blocks
from .dot import ACTIVATION_QUANTIZERS, quantize_activations, block_sums, combine, matmul_reference

__all__ = ["Bits", "Codes", "BlockFormat", "interleaved", "FORMATS", "WEIGHT_FORMATS", "ACTIVATION_FORMATS",
           "get_format", "format_of_type", "Unpacked", "as_blocks", "unpack", "dequantize", "encode", "pack",
           "random_blocks", "ACTIVATION_QUANTIZERS", "quantize_activations", "block_sums", "combine",
           "matmul_reference"]
