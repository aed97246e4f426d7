# Regenerates this folder: diffusers' own image-processor code run on PIL (Debian 12's python3-pil 9.4.0, numpy 1.24.2).
# The methods are taken from diffusers' source by name (torch is not needed for the PIL paths they take) and executed as
# they stand: get_crop_region, _resize_and_fill, _resize_and_crop and resize from v0.25.1; apply_overlay from v0.32.0
# (0.25.1's read the crop box (x1, y1, x2, y2) as (x, y, w, h), fixed by #6417 in 0.26.0, and pasted at the generated
# size instead of the original image's, fixed by #8793 in 0.32.0). Run: python3 make.py <diffusers git dir>
import ast, base64, json, subprocess, sys, textwrap, __future__
import numpy as np
import PIL
from PIL import Image, ImageOps

git = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/huggingface+diffusers/repo"

def methods(tag, names):
    src = subprocess.check_output(["git", "--git-dir", git, "show", f"{tag}:src/diffusers/image_processor.py"], text=True)
    cls = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == "VaeImageProcessor")
    found = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}
    out = []
    for name in names:
        f = found[name]
        static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in f.decorator_list)
        out.append(("@staticmethod\n" if static else "") + textwrap.dedent(ast.get_source_segment(src, f, padded=True)))
    return out

body = methods("v0.25.1", ["get_crop_region", "_resize_and_fill", "_resize_and_crop", "resize"]) + methods("v0.32.0", ["apply_overlay"])
code = "class Processor:\n    class config:\n        resample = 'lanczos'\n" + textwrap.indent("\n".join(body), "    ")
ns = {"np": np, "PIL": PIL, "Image": Image, "ImageOps": ImageOps, "torch": None,
      "PIL_INTERPOLATION": {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}}
exec(compile("from typing import *\n" + code, "image_processor", "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True), ns)
P = ns["Processor"]()

rng = np.random.default_rng(20261205)
def b64(im): return base64.b64encode(im.tobytes()).decode()
def save(name, im):
    im.save(name)
    return name

def box_mask(w, h, boxes, mode="L", value=255):
    a = np.zeros((h, w), np.uint8)
    for x1, y1, x2, y2 in boxes:
        a[y1:y2, x1:x2] = value
    im = Image.fromarray(a)
    return im.convert("RGB") if mode == "RGB" else im

# 1. get_crop_region: masks drawn as boxes (x1, y1, x2, y2 exclusive), processing sizes, paddings
regions = []
for w, h, boxes, width, height, pad in [
    (64, 64, [(20, 24, 30, 34)], 512, 512, 0),            # square box, square processing
    (64, 64, [(20, 24, 30, 34)], 512, 512, 4),
    (64, 64, [(10, 30, 50, 34)], 512, 512, 2),            # wide box → taller region
    (64, 64, [(30, 5, 33, 60)], 512, 512, 3),             # tall box → wider region
    (64, 48, [(2, 2, 8, 6)], 512, 384, 5),                # near the top-left corner: clamped at 0
    (64, 48, [(56, 40, 63, 47)], 384, 512, 6),            # near the bottom-right corner, portrait processing
    (64, 48, [(0, 20, 64, 28)], 512, 512, 0),             # full width: the height grows to the image's
    (40, 64, [(5, 0, 9, 64)], 512, 256, 1),               # full height, a landscape ratio the image cannot reach
    (64, 64, [(3, 3, 5, 5), (50, 40, 60, 61)], 512, 768, 7),   # two boxes
    (33, 17, [(11, 4, 12, 5)], 512, 512, 3),              # one pixel, odd sizes
    (33, 17, [(11, 4, 12, 5)], 448, 640, 0),
    (50, 50, [(0, 0, 50, 50)], 512, 512, 10),             # everything masked
    (16, 12, [], 16, 12, 8),                              # nothing masked, padding half the width: a region all the same
    (16, 12, [], 16, 12, 20),                             # nothing masked, padding over the size: the whole image
]:
    m = box_mask(w, h, boxes)
    regions.append({"width": w, "height": h, "boxes": boxes, "processing_width": width, "processing_height": height,
                    "pad": pad, "region": list(P.get_crop_region(m, width, height, pad=pad))})
# an RGB mask with a pixel whose L value rounds to 0 (0, 0, 1) and one that does not (0, 0, 9): only the second counts
a = np.zeros((20, 30, 3), np.uint8); a[3, 4] = (0, 0, 1); a[12, 20] = (0, 0, 9)
rgb_mask = Image.fromarray(a)
save("mask-rgb-30x20.png", rgb_mask)
regions.append({"file": "mask-rgb-30x20.png", "processing_width": 64, "processing_height": 64, "pad": 2,
                "region": list(P.get_crop_region(rgb_mask, 64, 64, pad=2))})

# 2. resize_mode "fill" and "crop": random RGB and L images to wider, taller and equal ratios
fill_src = {"fill-rgb-12x9.png": Image.fromarray(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)),
            "fill-l-7x10.png": Image.fromarray(rng.integers(0, 256, (10, 7), dtype=np.uint8))}
for name, im in fill_src.items():
    save(name, im)
resizes = []
for name, sizes in [("fill-rgb-12x9.png", [(16, 16), (24, 8), (8, 24), (16, 12), (11, 11), (20, 9), (13, 21)]),
                    ("fill-l-7x10.png", [(16, 16), (7, 17), (21, 10), (14, 20), (5, 3)])]:
    im = Image.open(name)
    for w, h in sizes:
        for mode in ("fill", "crop"):
            out = P.resize(im, h, w, resize_mode=mode)
            resizes.append({"source": name, "mode": mode, "width": w, "height": h, "out_mode": out.mode, "pixels": b64(out)})

# 3. apply_overlay: a graded mask (0 outside a box, 255 inside, ramps between), the init image, a generated image of
# the processing size, the crop region of the mask
init = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
mask_a = np.zeros((30, 40), np.uint8)
mask_a[10:18, 12:26] = 255
mask_a[9, 12:26] = 128; mask_a[18, 12:26] = 1; mask_a[10:18, 11] = 254; mask_a[10:18, 26] = 37
overlay_mask = Image.fromarray(mask_a)
generated = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
save("overlay-init-40x30.png", init); save("overlay-mask-40x30.png", overlay_mask); save("overlay-generated-32x24.png", generated)
overlays = []
for pad in (0, 3, 30):
    region = P.get_crop_region(overlay_mask, 32, 24, pad=pad)
    out = P.apply_overlay(overlay_mask, init, generated, region)
    overlays.append({"pad": pad, "region": list(region), "size": list(out.size), "pixels": b64(out)})
same = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
save("overlay-same-40x30.png", same)
out = P.apply_overlay(overlay_mask, init, same, None)
overlays.append({"pad": None, "generated": "overlay-same-40x30.png", "region": None, "size": list(out.size), "pixels": b64(out)})

# 4. the inpaint pipeline's preprocessing with padding_mask_crop=4 at 64x64 (tests/golden/img2img-init.png and
# inpaint-mask.png): the crop region, then the image and the mask cropped and resized with "fill" (the PIL images
# before pil_to_numpy; the mask after convert("L"))
pipe_init = Image.open("../img2img-init.png").convert("RGB")
pipe_mask = Image.open("../inpaint-mask.png").convert("RGB")
pipeline = []
for pad, width, height in [(4, 64, 64), (0, 64, 32)]:
    region = P.get_crop_region(pipe_mask, width, height, pad=pad)
    image_fill = P.resize(pipe_init.crop(region), height, width, resize_mode="fill")
    mask_fill = P.resize(pipe_mask.crop(region), height, width, resize_mode="fill").convert("L")
    pipeline.append({"pad": pad, "width": width, "height": height, "region": list(region),
                     "image": b64(image_fill), "mask": b64(mask_fill)})

json.dump({"pil": PIL.__version__, "numpy": np.__version__, "regions": regions, "resizes": resizes,
           "overlays": overlays, "pipeline": pipeline}, open("expected.json", "w"), indent=0)
print(len(regions), "regions,", len(resizes), "resizes,", len(overlays), "overlays,", len(pipeline), "pipeline cases")
for r in regions: print(r.get("boxes", r.get("file")), r["processing_width"], r["processing_height"], r["pad"], "->", r["region"])
for p in pipeline: print("pipeline", p["pad"], p["width"], p["height"], p["region"])
for o in overlays: print("overlay", o["pad"], o["region"], o["size"])
