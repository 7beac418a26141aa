"""Quantized llama models end to end: GGUF reading, the model's tokenizer, a numpy forward pass whose
MatMuls go through a hook (host or accelerator), and a tiny committed test model."""
