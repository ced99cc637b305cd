"""The data sets, by command (``ciaosr data list | fetch | prepare | verify``).

``catalog`` is the one table of sources and layouts; ``download`` fetches one file
(resume, checksum, retries), ``unpack`` extracts archives safely, ``fetch`` runs both
for a set, ``verify`` checks a set under the data root, ``prepare`` makes the layout
the configs and ``ciaosr eval`` read (LR, GTmod12, sub-images, manifest).
"""

from .catalog import DATASETS, DataSet, find_dataset, known_names

__all__ = ["DATASETS", "DataSet", "find_dataset", "known_names"]
