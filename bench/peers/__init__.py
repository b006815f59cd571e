"""The peers computeinfra is compared with: Celery 5 and Dramatiq, both on a local Redis."""
