"""Model transformations that change weights: power-of-two quantization (`accelkit quantize`)."""
