"""Everything about data, under one roof.

* ``sets/``: the data sets themselves: the one table of them (``sets.catalog``: where
  each comes from, its checksums and sizes, its layout under the data root, and the
  test sets it provides with how each is scored), and acquiring, preparing and
  verifying them (``ciaosr data list | fetch | prepare | verify``).
* ``benchmark.py``: reading a test set's (HR, LR) pairs under the LIIF or mmediting protocol.
* ``train_dataset.py``, ``realworld.py``: training samples (bicubic; real-world GT crops).
* ``degradations/``: the real-world degradation pipelines.
"""
