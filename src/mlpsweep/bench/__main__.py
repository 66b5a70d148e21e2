import sys

from mlpsweep.bench import main

sys.exit(main(prog="python -m mlpsweep.bench"))
