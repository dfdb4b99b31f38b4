"""replica_sim: the Hyper-V Replica simulator (`replica-sim`) for Python test suites.

`Simulator` starts the `replica-sim` binary this package installs on free loopback ports and
stops it; `World` is one isolated world in it; `Control` is the typed client of its control API
(errors raise `ControlError` with the server's message). The pytest plugin (`replica_sim.plugin`,
loaded automatically) gives each test a fresh world through the `replica_sim` fixture.
"""

from .control import Control, ControlError
from .simulator import Endpoint, Simulator, SimulatorError, World, find_binary

__all__ = ["Control", "ControlError", "Endpoint", "Simulator", "SimulatorError", "World", "find_binary"]
