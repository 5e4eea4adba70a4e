"""Lab 7 checks: plain pytest-testinfra tests (``pytest --hosts=paramiko://root@vm checks/``)."""
