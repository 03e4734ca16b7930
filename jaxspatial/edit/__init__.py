"""Editing operations: SpatialGAN heatmaps (:mod:`.heatmaps`), and the other families' edits."""
