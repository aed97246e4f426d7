# Regenerates this folder with PIL (Debian 12's python3-pil 9.4.0; exif_transpose and the EXIF reading it relies on are
# the same in Pillow 10.2, the release of diffusers 0.25.1's time). Run: python3 make.py
# Each file's expected pixels are diffusers.utils.load_image's: PIL.ImageOps.exif_transpose(Image.open(f)).convert("RGB").
import base64, io, json, struct, zlib
import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

rng = np.random.default_rng(20261201)
# 7x5 (odd, not square: every transpose gives another layout): random pixels for the lossless files; a smooth gradient
# for the JPEGs (their decoded pixels are compared, so any content works; a gradient keeps them small)
noise = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8))
yy, xx = np.mgrid[0:5, 0:7]
smooth = Image.fromarray(np.stack([xx * 36, yy * 60, 255 - xx * 20 - yy * 20], -1).astype(np.uint8))


def tiff(orientation, endian="<", kind=3):
    """A TIFF header and IFD0 holding one Orientation entry (0x0112) of TIFF type `kind` (3 SHORT, 4 LONG)."""
    value = struct.pack(endian + ("HH" if kind == 3 else "I"), orientation, 0) if kind == 3 else struct.pack(endian + "I", orientation)
    return ((b"II" if endian == "<" else b"MM") + struct.pack(endian + "HI", 42, 8) + struct.pack(endian + "H", 1)
            + struct.pack(endian + "HHI", 0x0112, kind, 1) + value + struct.pack(endian + "I", 0))


def chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xffffffff)


def png_with(chunks_before_idat=(), chunks_after_idat=()):
    """The noise image as a PNG with extra chunks around its IDAT."""
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    data, pos, out = buf.getvalue(), 8, [buf.getvalue()[:8]]
    while pos < len(data):
        n, t = struct.unpack(">I4s", data[pos:pos + 8])
        whole = data[pos:pos + 12 + n]
        if t == b"IDAT":
            out += [chunk(c, d) for c, d in chunks_before_idat] + [whole] + [chunk(c, d) for c, d in chunks_after_idat]
        else:
            out.append(whole)
        pos += 12 + n
    return b"".join(out)


def jpeg_with(app_segments):
    """The smooth image as a JPEG (quality 90) with the given APPn segments right after SOI."""
    buf = io.BytesIO()
    smooth.save(buf, "JPEG", quality=90)
    segs = b"".join(struct.pack(">BBH", 0xFF, m, len(s) + 2) + s for m, s in app_segments)
    return buf.getvalue()[:2] + segs + buf.getvalue()[2:]


def webp_exif_prefix(orientation):
    """A lossless WebP whose EXIF chunk starts with JPEG's "Exif\\0\\0" before the TIFF structure (PIL writes the bare
    structure, as the WebP container specifies; some writers keep the prefix, and PIL reads both)."""
    buf = io.BytesIO()
    noise.save(buf, "WEBP", lossless=True, exif=tiff(orientation))
    data, pos, body = buf.getvalue(), 12, b""
    while pos < len(data):
        t, n = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        payload = data[pos + 8:pos + 8 + n]
        if t == b"EXIF":
            payload = b"Exif\x00\x00" + payload
        body += t + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")
        pos += 8 + n + (n % 2)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def xmp(attribute):
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" ' + attribute + '</rdf:Description>'
            '</rdf:RDF></x:xmpmeta>').encode()


def itxt(keyword, text):
    return keyword.encode() + b"\x00\x00\x00\x00\x00" + text


def raw_profile(data):
    """ImageMagick's "Raw profile type exif" text: a blank line, the name, the length, then the bytes in hex."""
    h = data.hex()
    return ("\nexif\n%8d\n" % len(data) + "\n".join(h[i:i + 72] for i in range(0, len(h), 72)) + "\n").encode()


files = {}
for o in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = o
    for name, image, fmt, kw in ((f"jpeg-{o}.jpg", smooth, "JPEG", {"quality": 90}), (f"png-{o}.png", noise, "PNG", {}),
                                 (f"webp-{o}.webp", noise, "WEBP", {"lossless": True})):
        buf = io.BytesIO()
        image.save(buf, fmt, exif=exif, **kw)
        files[name] = buf.getvalue()
# other places and spellings of the tag, as PIL reads them or not
files["jpeg-6-little-endian.jpg"] = jpeg_with([(0xE1, b"Exif\x00\x00" + tiff(6))])  # PIL itself writes "MM"
files["jpeg-6-long.jpg"] = jpeg_with([(0xE1, b"Exif\x00\x00" + tiff(6, "<", kind=4))])          # a LONG: PIL turns it
files["jpeg-9-invalid.jpg"] = jpeg_with([(0xE1, b"Exif\x00\x00" + tiff(9))])                    # no such orientation: none
files["jpeg-two-exif-5-then-3.jpg"] = jpeg_with([(0xE1, b"Exif\x00\x00" + tiff(5)), (0xE1, b"Exif\x00\x00" + tiff(3))])  # the first
files["jpeg-6-xmp-only.jpg"] = jpeg_with([(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp('tiff:Orientation="6">'))])  # PIL: none
files["png-7-exif-after-idat.png"] = png_with(chunks_after_idat=[(b"eXIf", tiff(7))])
files["png-5-little-endian.png"] = png_with([(b"eXIf", tiff(5))])
files["png-6-raw-profile-ztxt.png"] = png_with([(b"zTXt", b"Raw profile type exif\x00\x00"
                                                 + zlib.compress(raw_profile(b"Exif\x00\x00" + tiff(6))))])
files["png-8-raw-profile-text.png"] = png_with([(b"tEXt", b"Raw profile type exif\x00" + raw_profile(b"Exif\x00\x00" + tiff(8)))])
files["png-6-xmp-attribute.png"] = png_with([(b"iTXt", itxt("XML:com.adobe.xmp", xmp('tiff:Orientation="6">')))])
files["png-8-xmp-element.png"] = png_with(chunks_after_idat=[(b"iTXt", itxt("XML:com.adobe.xmp", xmp('><tiff:Orientation>8</tiff:Orientation>')))])
files["png-3-exif-beats-xmp-6.png"] = png_with([(b"eXIf", tiff(3)), (b"iTXt", itxt("XML:com.adobe.xmp", xmp('tiff:Orientation="6">')))])
files["webp-6-exif-prefix.webp"] = webp_exif_prefix(6)
# the EXIF chunk of a file whose VP8X header does not flag it: libwebp's demuxer (and so Pillow) does not return it
unflagged = bytearray(files["webp-6.webp"])
assert unflagged[12:16] == b"VP8X" and unflagged[20] & 0x08
unflagged[20] &= ~0x08
files["webp-6-no-exif-flag.webp"] = bytes(unflagged)
# a mask with transparency (OpenAI's convention) turned by orientation 6: the server reads its alpha upright
mask = np.zeros((5, 7, 4), dtype=np.uint8)
mask[..., :3] = 255
mask[..., 3] = 255
mask[0:2, 0:3, 3] = 0
buf = io.BytesIO()
exif = Image.Exif()
exif[0x0112] = 6
Image.fromarray(mask).save(buf, "PNG", exif=exif)
files["mask-rgba-6.png"] = buf.getvalue()

expected = {}
for name, data in sorted(files.items()):
    open(name, "wb").write(data)
    im = Image.open(name)
    orientation = im.getexif().get(0x0112)
    out = ImageOps.exif_transpose(Image.open(name)).convert("RGB")
    entry = {"orientation": orientation, "width": out.width, "height": out.height,
             "pixels": base64.b64encode(out.tobytes()).decode()}
    if name.startswith("mask-"):
        # the alpha channel, turned as load_image turns the image: what the server's mask reading sees
        entry["alpha"] = base64.b64encode(ImageOps.exif_transpose(Image.open(name)).getchannel("A").tobytes()).decode()
    expected[name] = entry
    print(f"{name:32} orientation {orientation!s:5} -> {out.width}x{out.height}")

# for the CLI test: a 32x16 photo-like JPEG with orientation 6, and the same pixels turned upright as a PNG (16x32),
# written from PIL's load_image of the JPEG
yy, xx = np.mgrid[0:16, 0:32]
photo = Image.fromarray(np.stack([xx * 8, yy * 16, 255 - xx * 4 - yy * 8], -1).astype(np.uint8))
exif = Image.Exif()
exif[0x0112] = 6
photo.save("photo-6.jpg", "JPEG", quality=90, exif=exif)
ImageOps.exif_transpose(Image.open("photo-6.jpg")).convert("RGB").save("photo-6-upright.png")
# its mask for inpainting, with orientation 8 (white = repaint: the top third of the upright 16x32 image), stored turned
m = np.zeros((32, 16), dtype=np.uint8)
m[0:10, :] = 255
exif = Image.Exif()
exif[0x0112] = 8
Image.fromarray(np.rot90(np.rot90(np.rot90(m)))).save("photo-mask-8.png", exif=exif)
ImageOps.exif_transpose(Image.open("photo-mask-8.png")).convert("RGB").save("photo-mask-8-upright.png")
json.dump({"pil": Image.__version__, "files": expected}, open("expected.json", "w"), indent=0)
