"""Datasets: robust image decoding, the built-in procedural art set, caching, batching, augmentation."""

from brushwork.data.dataset import ArtDataset, ImageBatcher, load_dataset

__all__ = ["ArtDataset", "ImageBatcher", "load_dataset"]
