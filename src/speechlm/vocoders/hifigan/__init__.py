"""Unit HiFi-GAN (speech-resynthesis style): generator, discriminators, losses, training."""
