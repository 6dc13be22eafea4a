"""`python -m runner` as a user runs it, but every cell asks for no package: for the local executor's real runs.

The matrix's cells ask for TensorFlow, which the test interpreter lacks, so local would exclude them;
the workload's faults happen before any framework is imported, so these cells run all the same.
Usage: python tests/local_cli.py run -f MATRIX --executor local ...
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the runner of this checkout, as -m runner finds it

from host_runs import asking_for  # noqa: E402
from runner import cli  # noqa: E402

planned = cli.plan
cli.plan = lambda args: asking_for(planned(args), ())
sys.exit(cli.main(sys.argv[1:]))
