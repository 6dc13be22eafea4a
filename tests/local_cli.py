"""`python -m runner` as a user runs it, but every cell asks for no package: for the local executor's real runs.

The matrix's cells ask for TensorFlow, which the test interpreter lacks, so local would exclude them;
the workload's faults happen before any framework is imported, so these cells run all the same.
The local executor registered here takes every environment as asking for nothing.
Usage: python tests/local_cli.py run -f MATRIX --executor local ...
"""

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the runner of this checkout, as -m runner finds it

from runner import cli, executors  # noqa: E402
from runner.executors.local_executor import LocalExecutor  # noqa: E402


class AskingForNothing(LocalExecutor):
    def prepare(self, spec):
        return super().prepare(dataclasses.replace(spec, requirements=(), libraries=()))

    def outlook(self, spec):
        return super().outlook(dataclasses.replace(spec, requirements=(), libraries=()))


executors.REGISTRY["local"] = lambda wanted: AskingForNothing(wanted.python, wanted.gpu_devices, wanted.progress)
sys.exit(cli.main(sys.argv[1:]))
