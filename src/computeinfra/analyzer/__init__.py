"""The analyzer: job counts read from the topics themselves, and the lifecycle events only
a supervisor sees (``events``), turned into metrics. Free of Ray; ``computeinfra.cluster``
makes it an actor."""
