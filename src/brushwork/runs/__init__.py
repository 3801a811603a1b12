"""Run directories: what training writes and making reads (config, checkpoints, the lock).

Both ``training/`` and the image-making packages (``making/``, ``style/``) stand on this package;
it imports neither of them.
"""
