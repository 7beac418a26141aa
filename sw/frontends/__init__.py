"""Framework front ends: LiteRT (delegate, flatbuffer reader, single-op models) and TVM Relax (BYOC), and
model inputs."""
