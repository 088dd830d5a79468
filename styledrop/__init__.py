"""StyleDrop engine: tune aMUSEd to a style from one image with adapters, and sample from it.

Pure torch / diffusers / transformers / peft / open_clip; the web app never imports this package.
"""

__version__ = "0.1.0"
