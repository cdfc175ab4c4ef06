"""`python -m vidsme.cli ...` (what the launchers run: deepspeed/torchrun -m vidsme.cli)."""
import sys

from vidsme.cli import main

sys.exit(main())
