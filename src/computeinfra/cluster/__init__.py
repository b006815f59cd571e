"""Ray, and only Ray: the actor factory (``actors``), the launcher that places blocks and the
analyzer on nodes (``launcher``), node directories (``nodes``) and joining a cluster
(``connect``).

The logic the actors run lives in plain classes in ``computeinfra.block`` and
``computeinfra.analyzer``, which import no Ray and are tested without a cluster.
"""
