#!/usr/bin/env python3
"""Write the few hostile-input fixtures that Rust's `image` crate cannot write itself
(fixtures/hostile/): a CMYK JPEG and a palette PNG. Run with scripts/.venv's python (Pillow comes
with scikit-image): scripts/.venv/bin/python scripts/make_hostile.py"""
import os

from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "hostile")
os.makedirs(OUT, exist_ok=True)
Image.new("CMYK", (28, 28), (0, 128, 255, 10)).save(os.path.join(OUT, "cmyk.jpg"), quality=90)
p = Image.new("P", (28, 28))
p.putpalette([i % 256 for i in range(768)])
for x in range(28):
    for y in range(28):
        p.putpixel((x, y), (x * 9 + y) % 256)
p.save(os.path.join(OUT, "palette.png"))
print("wrote", os.path.normpath(OUT))
