"""Training: the runtime (device, precision), distributed draws, the :class:`Trainer`
base, the loop, the destination and signals, checkpoints, progress, GAN helpers and
``--processes``."""
