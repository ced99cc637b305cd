"""Image files: the in-memory image (``image``), 16-bit PNG/TIFF codecs (``codecs``),
EXIF orientation and the metadata carried to outputs (``metadata``), reading and
writing files (``reading``, ``writing``) and which files are images (``files``)."""

from .codecs import decode_png16, encode_png16, encode_tiff16
from .files import IMAGE_EXTENSIONS, list_images
from .image import ImageData, pil_to_data, quantise, split_channels, stack_channels
from .metadata import ImageMeta, apply_orientation
from .reading import from_pil, image_size, read_image
from .writing import WRITE_FORMATS, encode_image, output_format, write_image, write_tensor_png

__all__ = ["ImageData", "ImageMeta", "IMAGE_EXTENSIONS", "list_images", "WRITE_FORMATS", "read_image", "image_size", "from_pil",
           "write_image", "write_tensor_png", "pil_to_data", "apply_orientation", "output_format", "quantise", "encode_image",
           "split_channels", "stack_channels", "decode_png16", "encode_png16", "encode_tiff16"]
