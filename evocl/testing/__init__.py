"""Shipped contract suites: the engine and executor contracts as parametrized pytest classes.

    from evocl.testing.engines import EngineSuite        # every engine of ENGINES runs it
    from evocl.testing.executors import ExecutorSuite    # local and Ray run it

A third-party engine or executor subclasses the suite and overrides one fixture (see each
module). Importing these modules needs pytest and hypothesis (the ``dev`` extra).
"""
