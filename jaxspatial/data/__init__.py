"""Training data: the embedded procedural scenes and real image datasets, behind one grain
pipeline.

- :mod:`jaxspatial.data.shapes`   -- procedural "shapes" scenes with masks, centres, class ids
- :mod:`jaxspatial.data.folder`   -- images from a folder tree or a .zip archive
- :mod:`jaxspatial.data.tfds`     -- any TensorFlow Datasets dataset (array_record)
- :mod:`jaxspatial.data.pipeline` -- ``default_data_config``, ``make_source``, ``make_iterator``
- :mod:`jaxspatial.data.collages` -- collages of shapes scenes' objects (latent regression)

Submodules are imported on use (tfds is slow to import and only needed for its source).
"""
