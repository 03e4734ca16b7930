"""Checkpoints from other code bases, one module per source format: :mod:`.torch` (reading
PyTorch files safely), :mod:`.rosinality` (rosinality/stylegan2-pytorch)."""
