"""The version of voxscale."""
__version__ = "0.1.0"
