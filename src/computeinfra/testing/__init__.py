"""Throwaway stacks for tests and benchmarks: a broker and ``computeinfra up`` on free ports
(``stack``), and a multi-broker, multi-node cluster on one host (``cluster``)."""
