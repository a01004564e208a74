"""The ``envelope`` command line: thin modules over the Python API."""
