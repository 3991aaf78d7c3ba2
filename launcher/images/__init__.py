"""Container images of the project: offline base, wheelhouse, cached builds, air-gap archives."""

from launcher.images.build import BuildResult, build_images
from launcher.images.specs import IMAGES, ImageSpec, select_images

__all__ = ["IMAGES", "BuildResult", "ImageSpec", "build_images", "select_images"]
