"""What a grading keeps of a VM: evidence archives, the holes secrets leave in them, a run's
manifest.
"""
