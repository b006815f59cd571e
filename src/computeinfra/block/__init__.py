"""A working block's hot path, free of Ray: what happens to one ``pendingJobs`` record.

Modules in the order a record flows through them:

1. ``admit``: validate the raw record into an ``Assignment`` (or a rejection);
2. ``membership`` and ``positions``: the consumer group seat, and where to read again;
3. ``slots``, ``batching``, ``pipeline``, ``worker``: dispatch to the worker and collect;
4. ``transaction``: answers and consumed offsets committed in one Kafka transaction;
5. ``answers``: the one place a ``Completion`` is built.

``supervisor`` drives them; ``middleware`` holds the policies (retries, dead letters,
status, placement, reporting), one per module. ``computeinfra.cluster`` wraps the
supervisor and worker as Ray actors; nothing here imports Ray.
"""
