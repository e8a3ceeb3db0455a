"""Shipped weights of the learned decoders (``*.safetensors``) and their model cards (``*.md``)."""
