"""backdoorlab: backdoor attacks, their removal, and the sequela a removal leaves behind."""

__version__ = "0.1.0"
