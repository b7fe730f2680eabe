"""Benchmarks that compare cnnzoo against a baseline measured in the same run, and report ratios.

Absolute times on a shared machine are noise; a ratio of two measurements taken back to back,
interleaved and repeated, is not. Every function here returns a JSON-able dict; ``cnnzoo bench``
prints and saves them.
"""

# What `cnnzoo bench inference` measures beside eager fp32; here, not in bench.inference, so that
# the CLI's parser lists them without importing torch.
INFERENCE_VARIANTS = ("eager_fp32", "compiled_fp32", "bf16", "fp16", "int8_pt2e",
                      "int8_onnxruntime")
