"""What each image file says about itself: the provenance record (``record``), an optional
invisible watermark (``watermark``) and an optional signed C2PA manifest (``c2pa``)."""

from brushwork.provenance.record import (IMAGE_FORMATS, make_record, parameters_line, read_record,
                                         save_image, save_png)

__all__ = ["IMAGE_FORMATS", "make_record", "parameters_line", "read_record", "save_image", "save_png"]
