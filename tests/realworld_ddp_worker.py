"""A torchrun worker for tests/test_realworld_training.py: trains the resolved config file
``argv[1]`` (``--set`` overrides after it) with the stand-in degradation of
``realworld_fakes`` (the command line would use the project's own)."""

import sys

from realworld_fakes import FAKE_OPS

from ciaosr.training.config import build_config, read_yaml
from ciaosr.training.trainer import Trainer

if __name__ == "__main__":
    import os

    import torch

    if os.environ.get("CIAOSR_TEST_NO_ONEDNN"):
        torch.backends.mkldnn.enabled = False
    cfg = build_config(read_yaml(sys.argv[1]), sys.argv[2:], source=sys.argv[1])
    Trainer(cfg, realworld_ops=FAKE_OPS).run()
