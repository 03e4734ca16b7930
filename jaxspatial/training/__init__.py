"""The training system: configs, sharded GAN step, EMA, checkpoints, logging, the loop."""
