"""`python -m fastgrpo` (what `torchrun -m fastgrpo` launches)."""

from fastgrpo.cli.main import main

main()
