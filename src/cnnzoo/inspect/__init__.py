"""Looking inside models: per-layer shapes, parameters, multiply-adds and receptive fields."""

from cnnzoo.layers.output_size import conv_input_size_needed, conv_output_size

__all__ = ["conv_output_size", "conv_input_size_needed"]
