"""paperwire: personalized research-paper digests and feeds from trending paper listings."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("paperwire")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"
