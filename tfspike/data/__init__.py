"""Datasets. Every loader reads a local copy first (``--data_dir`` / ``TFSPIKE_DATA``, laid out like
``shared/data``), then the public download; a dataset that is in neither place raises
:class:`tfspike.errors.MissingDataError` naming the expected file."""

from tfspike.data.paths import data_dir_from, find_local, missing_data  # noqa: F401
from tfspike.data.images import IMAGE_DATASETS, load_image_dataset  # noqa: F401
