"""Reaching a machine: SSH, this machine, the memoized testinfra backend, prefetch, what the VM
says it is.
"""
