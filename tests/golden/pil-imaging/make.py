# Regenerates this folder with PIL (Debian 12's python3-pil 9.4.0; Geometry.c and Resample.c are unchanged up to
# Pillow 10.2, the release of diffusers 0.25.1's time). Run: python3 make.py
import base64, json, struct, zlib
import numpy as np
from PIL import Image

rng = np.random.default_rng(20260822)
FILTERS = {"nearest": Image.NEAREST, "box": Image.BOX, "bilinear": Image.BILINEAR,
           "hamming": Image.HAMMING, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
SOURCES = {"resize-rgb-12x10.png": (rng.integers(0, 256, (10, 12, 3), dtype=np.uint8),
                                    [(8, 8), (18, 15), (9, 25), (24, 16), (5, 3)]),
           "resize-l-8x8.png": (rng.integers(0, 256, (8, 8), dtype=np.uint8), [(6, 12), (3, 5)])}
cases = []
for name, (pixels, sizes) in SOURCES.items():
    source = Image.fromarray(pixels)
    source.save(name)
    for w, h in sizes:
        for filter_name, f in FILTERS.items():
            out = Image.open(name).resize((w, h), resample=f)
            cases.append({"source": name, "filter": filter_name, "width": w, "height": h,
                          "pixels": base64.b64encode(out.tobytes()).decode()})
json.dump({"pil": Image.__version__, "cases": cases}, open("resize-expected.json", "w"), indent=0)

# gray16.png: 4x3, 16-bit grayscale (colour type 0), written by hand (PIL writes mode I as 16-bit too, but this keeps
# the values exact): PIL opens it in mode "I" and convert("RGB") clips each value to 0-255.
values = [0, 255, 256, 65535, 32768, 128, 127, 1000, 12, 40000, 254, 300]
raw = b"".join(b"\x00" + b"".join(struct.pack(">H", v) for v in values[y * 4:(y + 1) * 4]) for y in range(3))
def chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xffffffff)
open("gray16.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 3, 16, 0, 0, 0, 0))
                               + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
print(list(Image.open("gray16.png").convert("L").getdata()))
