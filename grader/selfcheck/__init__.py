"""The self-check students run on their own VM: the bundle, its program, their last run."""
