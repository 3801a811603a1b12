"""Making images from trained runs: one module per verb, each a library function the CLI and the
studio both call.

generate    load a run's model (any family), per-seed images, children and crossbreeds
reproduce   reconstruct, vary and blend real artworks (VAE encoding; GAN projection)
projection  finding the GAN latent whose image matches an artwork
video       GIF/MP4 walks through latents and styles
"""
