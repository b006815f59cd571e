# Importing computeinfra first sets Ray's environment (loopback only, no usage reporting)
# before any test module imports ray itself.
import computeinfra  # noqa: F401
