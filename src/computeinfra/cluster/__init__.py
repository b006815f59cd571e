"""Task performance: supervisors, workers and the analyzer, and the launcher that runs them.

The logic lives in plain classes (``Supervisor``, ``Worker``, ``Analyzer``) so it can be
tested without a cluster; ``computeinfra.cluster.actors`` is the one place that makes them
Ray actors.
"""
