"""Where layers run: executors (a device's simulation or the fast `model` backend), device selection and the
design cache key, and accelerator lists (`--accel a,b`)."""
