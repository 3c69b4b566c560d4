"""The TensorRT backend: engine build, cache, runtime and CUDA memory (docs/tensorrt.md)."""
