"""`python -m fastgrpo.eval ARGS` = `fastgrpo eval ARGS`; a `--nproc` launch passes ARGS in FASTGRPO_EVAL_ARGV."""

import json
import os
import sys

from fastgrpo.cli.main import app
from fastgrpo.eval.parallel import ARGV_ENV

if __name__ == "__main__":
    args = json.loads(os.environ[ARGV_ENV]) if ARGV_ENV in os.environ else sys.argv[1:]
    app(["eval", *args], prog_name="fastgrpo")
