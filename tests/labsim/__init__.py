"""The lab simulator: simulated student VMs for end-to-end tests and the README's demo."""
