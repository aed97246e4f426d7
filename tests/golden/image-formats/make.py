# Regenerates this folder with PIL (Debian 12's python3-pil 9.4.0, numpy 1.24.2). Run: /usr/bin/python3 make.py
# Each file is an image of a format that datasets' imagefolder loader reads (its IMAGE_EXTENSIONS, datasets 5.0.1),
# in the variants that decide its pixels (palette, grayscale, alpha, bit depth, compression, frames). expected.json
# holds, for each, what train_unconditional trains on: datasets.Image.decode_example (PIL.Image.open, load, and
# exif_transpose where there is an orientation) then the script's .convert("RGB"), as base64 HWC bytes; or, for the
# formats DiffusersSharp does not decode, the format PIL reads the file as (the file must be refused, not skipped).
import base64, hashlib, io, json, os, re, struct, zlib
import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261215)
files = {}  # name -> bytes


def noise(w, h, c=3):
    return rng.integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8)


def save(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


rgb = Image.fromarray(noise(7, 5))
rgba_arr = noise(7, 5, 4)
rgba_arr[0, :, 3] = 0      # a fully transparent row whose colours are not black: convert("RGB") keeps them
rgba_arr[1, :, 3] = 255
rgba = Image.fromarray(rgba_arr)
gray = Image.fromarray(noise(7, 5, 1))
pal = Image.fromarray(rng.integers(0, 6, (5, 7), dtype=np.uint8), "P")
pal.putpalette(list(noise(6, 1).reshape(-1)))

# ---- PNG (and APNG): palette with tRNS, gray with tRNS, RGB with tRNS, LA, RGBA, 1/2/4-bit, 16-bit
files["png-rgba.png"] = save(rgba, "PNG")
files["png-la.png"] = save(Image.fromarray(noise(7, 5, 2), "LA"), "PNG")
files["png-palette-trns.png"] = save(pal, "PNG", transparency=bytes([0, 128, 255, 7, 0, 255]))
files["png-gray-trns.png"] = save(gray, "PNG", transparency=int(np.asarray(gray)[0, 0]))
files["png-rgb-trns.png"] = save(rgb, "PNG", transparency=tuple(int(v) for v in np.asarray(rgb)[0, 0]))
files["png-1bit.png"] = save(Image.fromarray(noise(9, 5, 1) > 127), "PNG")
files["png-palette-2bit.png"] = save(pal.point(lambda v: v % 4), "PNG", bits=2)
files["png-palette-4bit.png"] = save(pal, "PNG", bits=4)


def png_raw(w, h, depth, ctype, raw_rows, extra=()):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    data = b"".join(b"\x00" + r for r in raw_rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
            + b"".join(chunk(t, d) for t, d in extra) + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))


a16 = rng.integers(0, 65536, (5, 7, 4), dtype=np.uint16)
a16[0, 0] = [255, 256, 65535, 0]
files["png-rgb16.png"] = png_raw(7, 5, 16, 2, [a16[y, :, :3].astype(">u2").tobytes() for y in range(5)])
files["png-rgba16.png"] = png_raw(7, 5, 16, 6, [a16[y].astype(">u2").tobytes() for y in range(5)])
files["png-la16.png"] = png_raw(7, 5, 16, 4, [a16[y, :, :2].astype(">u2").tobytes() for y in range(5)])
g2 = rng.integers(0, 4, (5, 8), dtype=np.uint8)
files["png-gray-2bit.png"] = png_raw(8, 5, 2, 0, [bytes((r[i] << 6) | (r[i + 1] << 4) | (r[i + 2] << 2) | r[i + 3] for i in range(0, 8, 4)) for r in g2])
# APNG: two frames, the default image the first of them; PIL opens the first frame, as a PNG decoder reads the IDAT
frame2 = Image.fromarray(noise(7, 5))
files["apng-two-frames.apng"] = save(rgb, "PNG", save_all=True, append_images=[frame2], duration=100)

# ---- JPEG under its other extensions, grayscale, CMYK, progressive
smooth = Image.fromarray(np.stack(np.meshgrid(np.arange(16) * 16, np.arange(12) * 20) + [np.full((12, 16), 90)], -1).astype(np.uint8))
files["jpeg-baseline.jfif"] = save(smooth, "JPEG", quality=90)
files["jpeg-progressive.jpe"] = save(smooth, "JPEG", quality=90, progressive=True)
files["jpeg-gray.jpeg"] = save(smooth.convert("L"), "JPEG", quality=90)
files["jpeg-cmyk.jpg"] = save(smooth.convert("CMYK"), "JPEG", quality=90)

# ---- BMP: what PIL writes (24-bit, 32-bit, 8-bit palette and gray, 1-bit) and what it reads beyond that
files["bmp-rgb24.bmp"] = save(rgb, "BMP")
files["bmp-rgba32.bmp"] = save(rgba, "BMP")
files["bmp-palette8.bmp"] = save(pal, "BMP")
files["bmp-gray8.bmp"] = save(gray, "BMP")
files["bmp-1bit.bmp"] = save(Image.fromarray(noise(9, 5, 1) > 127), "BMP")
files["bmp-rgb24.dib"] = files["bmp-rgb24.bmp"]  # a .dib that is a BMP file (PIL reads it by its content)


def bmp(w, h, bits, rows, palette=b"", compression=0, header=40, masks=b"", colors=0, top_down=False, image=None):
    """A BMP file: rows bottom-up (each already padded) unless image (compressed data) is given; masks follow a
    40-byte header, or fill a longer one."""
    body = image if image is not None else b"".join(rows)
    if header == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        info = struct.pack("<IiiHHIIiiII", header, w, -h if top_down else h, 1, bits, compression, len(body), 2835, 2835, colors, 0)
        info += masks + b"\x00" * (header - 40 - len(masks))
    off = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", off + len(body), 0, 0, off) + info + palette + body


def pad(b):
    return b + b"\x00" * (-len(b) % 4)


p16 = bytes(v for c in noise(16, 1)[0] for v in (c[2], c[1], c[0], 0))   # BGRX palette of 16 colours
i4 = rng.integers(0, 16, (5, 7), dtype=np.uint8)
rows4 = [pad(bytes((r[i] << 4) | (r[i + 1] if i + 1 < 7 else 0) for i in range(0, 7, 2))) for r in i4[::-1]]
files["bmp-palette4.bmp"] = bmp(7, 5, 4, rows4, palette=p16)
files["bmp-palette4-top-down.bmp"] = bmp(7, 5, 4, rows4[::-1], palette=p16, top_down=True)
# 8-bit with 5 palette entries (biClrUsed 5)
i8 = rng.integers(0, 5, (5, 7), dtype=np.uint8)
files["bmp-palette8-5-colours.bmp"] = bmp(7, 5, 8, [pad(bytes(r)) for r in i8[::-1]], palette=p16[:20], colors=5)
# OS/2 1.x header (12 bytes, BGR palette entries, 256 of them)
files["bmp-os2-palette8.bmp"] = bmp(7, 5, 8, [pad(bytes(r)) for r in i8[::-1]],
                                     palette=b"".join(p16[4 * i:4 * i + 3] for i in range(5)) + b"\x00" * 3 * 251, header=12)
# 16-bit: every 5- and 6-bit level appears (PIL expands v to v * 255 // 31 (// 63))
lv = np.arange(64, dtype=np.uint16)
px555 = ((lv % 32) << 10) | (((lv * 7) % 32) << 5) | ((lv * 3) % 32)
px565 = ((lv % 32) << 11) | (lv << 5) | ((lv * 5) % 32)
files["bmp-rgb555.bmp"] = bmp(16, 4, 16, [pad(px555[16 * y:16 * y + 16].astype("<u2").tobytes()) for y in range(4)][::-1])
files["bmp-rgb565-bitfields.bmp"] = bmp(16, 4, 16, [pad(px565[16 * y:16 * y + 16].astype("<u2").tobytes()) for y in range(4)][::-1],
                                        compression=3, masks=struct.pack("<III", 0xF800, 0x7E0, 0x1F))
# 32-bit BI_RGB with a non-zero fourth byte (PIL reads it as BGRX: no alpha), and with BITFIELDS and an alpha mask (V5)
a32 = noise(7, 5, 4)
files["bmp-bgrx32.bmp"] = bmp(7, 5, 32, [a32[y].tobytes() for y in range(5)][::-1])
a32[0, :, 3] = 0
files["bmp-bgra32-v5.bmp"] = bmp(7, 5, 32, [a32[y].tobytes() for y in range(5)][::-1], compression=3, header=124,
                                 masks=struct.pack("<IIII", 0xFF0000, 0xFF00, 0xFF, 0xFF000000))
# RLE8 and RLE4 (runs, absolute runs, end of line, end of bitmap)
rle8 = bytes([3, 1, 0, 4, 2, 3, 4, 0, 0, 0]) + bytes([7, 2, 0, 0]) + bytes([2, 4, 5, 3, 0, 0]) + bytes([0, 1])
files["bmp-rle8.bmp"] = bmp(7, 3, 8, None, palette=p16[:24], compression=1, colors=6, image=rle8)
rle4 = bytes([7, 0x12, 0, 0]) + bytes([0, 7, 0x34, 0x56, 0x70, 0x00, 0, 0]) + bytes([4, 0xAB, 3, 0xCD, 0, 0]) + bytes([0, 1])
files["bmp-rle4.bmp"] = bmp(7, 3, 4, None, palette=p16, compression=2, image=rle4)
# an end of line before the row is full, a run past the row's end (cut), an absolute run past it (not cut: it goes on
# into the next row), odd-length absolute runs (word alignment). No delta escape: Pillow reads it from the wrong bytes
# up to 12.1 (9.4 here), so its pixels depend on the version
rle8_skips = (bytes([2, 3, 0, 0]) + bytes([9, 4, 0, 0]) + bytes([0, 9, 1, 2, 3, 4, 5, 0, 1, 2, 3, 0]) + bytes([2, 5, 0, 0])
              + bytes([0, 1]))
files["bmp-rle8-skips.bmp"] = bmp(7, 4, 8, None, palette=p16[:24], compression=1, colors=6, image=rle8_skips)
# RLE4 with an odd absolute run (PIL reads n // 2 bytes: one pixel short) and top-down rows
rle4_odd = bytes([0, 5, 0x12, 0x34, 0x50, 0]) + bytes([4, 0x67, 0, 0]) + bytes([7, 0x89, 0, 0]) + bytes([7, 0xAB, 0, 1])
files["bmp-rle4-odd-absolute-top-down.bmp"] = bmp(7, 3, 4, None, palette=p16, compression=2, image=rle4_odd, top_down=True)
i2 = rng.integers(0, 4, (5, 7), dtype=np.uint8)
i2p = np.concatenate([i2, np.zeros((5, 1), np.uint8)], 1)
# 2 bits per pixel: PIL refuses it ("Unsupported BMP pixel depth (2)")
files["bmp-palette2.bmp"] = bmp(7, 5, 2, [pad(bytes((r[i] << 6) | (r[i + 1] << 4) | (r[i + 2] << 2) | r[i + 3] for i in range(0, 8, 4)))
                                          for r in i2p[::-1]], palette=p16[:16])
# a 4-bit BMP whose 16 palette entries are the gray ramp 0..15: PIL takes it for mode "L" and reads its rows as 8-bit
files["bmp-palette4-gray-ramp-garbled.bmp"] = bmp(7, 5, 4, rows4, palette=bytes(v for i in range(16) for v in (i, i, i, 0)))
files["dib-headerless.dib"] = save(rgb, "DIB")

# ---- GIF: the first frame (PIL opens it in mode P, or L without a colour table)
files["gif-palette.gif"] = save(pal, "GIF")
files["gif-transparent-index.gif"] = save(pal, "GIF", transparency=2)   # convert("RGB") gives the index's colour
files["gif-gray.gif"] = save(gray, "GIF")
files["gif-rgb-quantized.gif"] = save(rgb, "GIF")
files["gif-animated.gif"] = save(pal, "GIF", save_all=True, append_images=[Image.fromarray(noise(7, 5)).quantize(8)], duration=50, loop=0)


def lzw(indices, min_size):
    """GIF LZW with a clear code before every code (never grows the table), then end of information."""
    clear, end = 1 << min_size, (1 << min_size) + 1
    size = min_size + 1
    bits, n, out = 0, 0, bytearray()
    for code in [clear] + [c for i in indices for c in (i, clear)][:-1] + [end]:
        bits |= code << n
        n += size
        while n >= 8:
            out.append(bits & 255)
            bits >>= 8
            n -= 8
    if n:
        out.append(bits & 255)
    blocks = b"".join(bytes([len(out[i:i + 255])]) + out[i:i + 255] for i in range(0, len(out), 255))
    return bytes([min_size]) + blocks + b"\x00"


def gif(sw, sh, gct, frames, bg=0):
    """A GIF89a: screen sw x sh with global colour table gct (bytes, 2^k entries or b""), frames of
    (x, y, w, h, indices, lct, transparency, interlaced)."""
    k = max(0, (len(gct) // 3).bit_length() - 2)
    out = b"GIF89a" + struct.pack("<HHBBB", sw, sh, (0x80 | k) if gct else 0, bg, 0) + gct
    for x, y, w, h, idx, lct, trans, interlaced in frames:
        if trans is not None:
            out += b"\x21\xf9\x04" + bytes([1, 0, 0, trans, 0])
        kl = max(0, (len(lct) // 3).bit_length() - 2)
        out += b"\x2c" + struct.pack("<HHHHB", x, y, w, h, ((0x80 | kl) if lct else 0) | (0x40 if interlaced else 0)) + lct
        rows = [idx[i * w:(i + 1) * w] for i in range(h)]
        if interlaced:
            order = list(range(0, h, 8)) + list(range(4, h, 8)) + list(range(2, h, 4)) + list(range(1, h, 2))
            rows = [rows[i] for i in order]
        out += lzw([v for r in rows for v in r], max(2, (max(len(lct or gct) // 3, max(idx) + 1) - 1).bit_length()))
    return out + b"\x3b"


gct8 = bytes(noise(8, 1).reshape(-1))
idx = [int(v) for v in rng.integers(0, 8, 20)]
# a first frame smaller than the screen: PIL fills the rest with index 0 (or the transparency index), not the background
files["gif-frame-inside-screen.gif"] = gif(7, 6, gct8, [(2, 1, 4, 5, idx, b"", None, False)], bg=5)
files["gif-frame-inside-screen-transparent.gif"] = gif(7, 6, gct8, [(1, 2, 5, 4, idx, b"", 3, False)], bg=5)
lct4 = bytes(noise(4, 1).reshape(-1))
files["gif-local-colour-table-interlaced.gif"] = gif(4, 5, gct8, [(0, 0, 4, 5, [v % 4 for v in idx], lct4, None, True)])
files["gif-no-colour-table.gif"] = gif(4, 5, b"", [(0, 0, 4, 5, idx, b"", None, False)])
files["gif-gray-ramp-table.gif"] = gif(4, 5, bytes(v for i in range(8) for v in (i, i, i)), [(0, 0, 4, 5, idx, b"", None, False)])
idx13 = [int(v) for v in rng.integers(0, 8, 3 * 13)]
files["gif-interlaced-13-rows.gif"] = gif(3, 13, gct8, [(0, 0, 3, 13, idx13, b"", None, True)])
# PIL's own LZW: code sizes growing to 12 bits and clear codes (random pixels), long runs (the KwKwK codes)
files["gif-lzw-noise-256.gif"] = save(Image.fromarray(noise(80, 60)).quantize(256), "GIF")
files["gif-lzw-runs.gif"] = save(Image.fromarray(np.repeat(rng.integers(0, 4, (60, 8), dtype=np.uint8), 10, axis=1), "P"), "GIF")
# image data that ends early, as PIL's GifDecode.c reads it: an empty sub-block is no end (it reads the next size byte
# on), so data split by one decodes, and data that stops before the last pixel, then a terminator and the trailer, is
# "image file is truncated"
g = gif(4, 5, gct8, [(0, 0, 4, 5, idx, b"", None, False)])
at = 13 + len(gct8) + 10  # the LZW minimum code size; one sub-block of data follows
n, data = g[at + 1], g[at + 2:at + 2 + g[at + 1]]
files["gif-empty-sub-block.gif"] = g[:at + 1] + bytes([3]) + data[:3] + b"\x00" + bytes([n - 3]) + data[3:] + b"\x00;"
files["gif-data-ends-early.gif"] = g[:at + 1] + bytes([3]) + data[:3] + b"\x00;"


def gif_end_code_at(end_after):
    """A 300x300 GIF of 4 colours over more than 64 KiB of LZW data (a clear code after each pixel's code), with an end
    code after pixel number end_after too. PIL's load reads the file 64 KiB at a time: an end code before the frame is
    full makes the decoder return for more, and where the file has more, it decodes on after the end code; where not, the
    image is truncated. ImageFormatsGoldenTests builds the same bytes (their SHA-256 is in expected.json)."""
    w = h = 300
    codes = [4]
    for i in range(w * h):
        codes.append((i % w * 7 + i // w * 3) % 4)
        if i == end_after:
            codes.append(5)
        codes.append(4 if i < w * h - 1 else 5)
    bits = "".join(format(c, "03b")[::-1] for c in codes)  # 3-bit codes, least significant bit first
    bits += "0" * (-len(bits) % 8)
    data = bytes(int(bits[i:i + 8][::-1], 2) for i in range(0, len(bits), 8))
    blocks = b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255))
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0x81, 0, 0) + bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + bytes([2]) + blocks + b"\x00;")


constructed = {}
for name, end_after in (("gif-end-code-after-pixel-1000", 1000), ("gif-end-code-after-pixel-89000", 89000)):
    data = gif_end_code_at(end_after)
    entry = {"end_after": end_after, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
        out = im.convert("RGB")
        entry.update(width=out.width, height=out.height, pixels_sha256=hashlib.sha256(out.tobytes()).hexdigest())
        ink = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
        assert out.tobytes() == ink[(np.arange(300)[None, :] * 7 + np.arange(300)[:, None] * 3) % 4].tobytes()  # every pixel
    except Exception as e:
        entry["pil_error"] = f"{type(e).__name__}: {e}"
    constructed[name] = entry

# ---- WebP: lossless and lossy, with alpha, animated (first frame)
files["webp-lossless.webp"] = save(rgb, "WEBP", lossless=True)
files["webp-lossless-alpha-exact.webp"] = save(rgba, "WEBP", lossless=True, exact=True)
files["webp-lossy.webp"] = save(Image.fromarray(noise(16, 12)), "WEBP", quality=80)
files["webp-lossy-alpha.webp"] = save(Image.fromarray(noise(16, 12, 4)), "WEBP", quality=80)
files["webp-animated.webp"] = save(rgb, "WEBP", lossless=True, save_all=True, append_images=[frame2], duration=50)

# ---- ICO and CUR: PIL opens the largest image
files["ico-png-sizes.ico"] = save(Image.fromarray(noise(32, 32, 4)), "ICO", sizes=[(16, 16), (32, 32)])
files["ico-bmp32.ico"] = save(Image.fromarray(noise(16, 16, 4)), "ICO", sizes=[(16, 16)], bitmap_format="bmp")


def ico(entries, kind=1):
    """An ICO (kind 1) or CUR (kind 2) of BMP images: (w, h, bits, xor rows bottom-up, and-mask rows, palette)."""
    head = struct.pack("<HHH", 0, kind, len(entries))
    off = 6 + 16 * len(entries)
    dirs, datas = b"", b""
    for w, h, bits, xor, mask, palette in entries:
        info = struct.pack("<IiiHHIIiiII", 40, w, 2 * h, 1, bits, 0, 0, 0, 0, len(palette) // 4 if bits <= 8 else 0, 0)
        data = info + palette + b"".join(xor) + b"".join(mask)
        dirs += struct.pack("<BBBBHHII", w % 256, h % 256, len(palette) // 4 if bits < 8 else 0, 0, 1 if kind == 1 else 3,
                            bits if kind == 1 else 4, len(data), off + len(datas))
        datas += data
    return head + dirs + datas


def mask_rows(w, h):
    m = rng.integers(0, 2, (h, w), dtype=np.uint8)
    return [pad(np.packbits(r).tobytes()) for r in m]


i8i = rng.integers(0, 16, (16, 16), dtype=np.uint8)
files["ico-bmp8-and-mask.ico"] = ico([(16, 16, 8, [pad(bytes(r)) for r in i8i], mask_rows(16, 16), p16)])
files["ico-bmp4-and-mask.ico"] = ico([(16, 16, 4, [pad(bytes((r[i] << 4) | r[i + 1] for i in range(0, 16, 2))) for r in i8i],
                                       mask_rows(16, 16), p16)])
x24 = noise(16, 16)
files["ico-bmp24-and-mask.ico"] = ico([(16, 16, 24, [pad(x24[y, :, ::-1].tobytes()) for y in range(16)], mask_rows(16, 16), b"")])
files["ico-bmp-sizes.ico"] = ico([(8, 8, 24, [pad(noise(8, 8)[y].tobytes()) for y in range(8)], mask_rows(8, 8), b""),
                                   (16, 16, 8, [pad(bytes(r)) for r in i8i], mask_rows(16, 16), p16),
                                   (4, 4, 24, [pad(noise(4, 4)[y].tobytes()) for y in range(4)], mask_rows(4, 4), b"")])
files["cur-palette4.cur"] = ico([(16, 16, 4, [pad(bytes((r[i] << 4) | r[i + 1] for i in range(0, 16, 2))) for r in i8i],
                                  mask_rows(16, 16), p16)], kind=2)
files["cur-bmp24.cur"] = ico([(16, 16, 24, [pad(x24[y, :, ::-1].tobytes()) for y in range(16)], mask_rows(16, 16), b"")], kind=2)

# ---- TIFF: the first page, as PIL reads it (its own reader for raw strips, libtiff for the compressed ones); the
# random state is put back after it, so the files that follow keep their pixels
rng_state = rng.bit_generator.state
files["tiff-rgb.tif"] = save(rgb, "TIFF")
files["tiff-lzw.tiff"] = save(rgb, "TIFF", compression="tiff_lzw")
t_rgb = Image.fromarray(noise(5, 3))
files["tiff-packbits.tif"] = save(t_rgb, "TIFF", compression="packbits")
files["tiff-adobe-deflate.tif"] = save(t_rgb, "TIFF", compression="tiff_adobe_deflate")
files["tiff-lzw-predictor.tif"] = save(rgb, "TIFF", compression="tiff_lzw", tiffinfo={317: 2})
files["tiff-deflate-predictor.tif"] = save(rgb, "TIFF", compression="tiff_adobe_deflate", tiffinfo={317: 2})
files["tiff-lzw-noise-64.tif"] = save(Image.fromarray(noise(64, 40)), "TIFF", compression="tiff_lzw")  # code widths 9-12, clear codes
files["tiff-gray.tif"] = save(gray, "TIFF")
files["tiff-1bit.tif"] = save(Image.fromarray(noise(9, 5, 1) > 127), "TIFF")
files["tiff-palette.tif"] = save(pal, "TIFF")
files["tiff-rgba.tif"] = save(rgba, "TIFF", compression="tiff_lzw")
files["tiff-la.tif"] = save(Image.fromarray(noise(5, 3, 2), "LA"), "TIFF")
g16 = rng.integers(0, 65536, (3, 5), dtype=np.uint16)
g16[0, :4] = [0, 7, 255, 256]
files["tiff-gray16.tif"] = save(Image.frombytes("I;16", (5, 3), g16.astype("<u2").tobytes()), "TIFF")
files["tiff-gray16-big-endian.tif"] = save(Image.frombytes("I;16B", (5, 3), g16.astype(">u2").tobytes()), "TIFF")
files["tiff-two-pages.tif"] = save(t_rgb, "TIFF", save_all=True, append_images=[Image.fromarray(noise(5, 3))])
# refused: PIL reads them, DiffusersSharp does not (JPEG-in-TIFF, CMYK, YCbCr, float, signed 32-bit)
files["tiff-jpeg.tif"] = save(Image.fromarray(noise(16, 8)), "TIFF", compression="jpeg")
files["tiff-cmyk.tif"] = save(t_rgb.convert("CMYK"), "TIFF")
files["tiff-ycbcr.tif"] = save(t_rgb.convert("YCbCr"), "TIFF")
files["tiff-float.tif"] = save(Image.fromarray(noise(5, 3, 1)).convert("F"), "TIFF")


def tiff(w, h, tags, chunks, big_endian=False):
    """A one-page TIFF: tags {tag: (type, values)} (3 SHORT, 4 LONG, 5 RATIONAL: numerator, denominator, ...) plus the strip or tile offsets and byte counts
    of chunks (each already compressed), under tags 273/279 or, where tags hold a tile width (322), 324/325."""
    e = ">" if big_endian else "<"
    out = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 0)
    offs = []
    for c in chunks:
        offs.append(len(out))
        out += c + b"\x00" * (len(c) % 2)
    tiled = 322 in tags
    tags = dict(tags)
    tags.update({256: (4, [w]), 257: (4, [h]), 324 if tiled else 273: (4, offs), 325 if tiled else 279: (4, [len(c) for c in chunks])})
    extra = b""
    ifd_at = len(out)
    base = ifd_at + 2 + 12 * len(tags) + 4
    entries = b""
    for tag in sorted(tags):
        typ, vals = tags[tag]
        data = b"".join(struct.pack(e + ("H" if typ == 3 else "I"), v) for v in vals)
        if len(data) <= 4:
            entries += struct.pack(e + "HHI", tag, typ, len(vals) // (2 if typ == 5 else 1)) + data + b"\x00" * (4 - len(data))
        else:
            entries += struct.pack(e + "HHII", tag, typ, len(vals) // (2 if typ == 5 else 1), base + len(extra))
            extra += data
    out += struct.pack(e + "H", len(tags)) + entries + struct.pack(e + "I", 0) + extra
    return out[:4] + struct.pack(e + "I", ifd_at) + out[8:]


def packbits(b):
    """PackBits: a literal run, then a repeat run, alternately (both kinds, and the no-op code 128)."""
    out, i = bytearray([128]), 0
    while i < len(b):
        lit = b[i:i + 3]
        out += bytes([len(lit) - 1]) + lit
        i += len(lit)
        if i < len(b):
            n = 1
            while i + n < len(b) and n < 128 and b[i + n] == b[i]:
                n += 1
            out += bytes([257 - n if n > 1 else 0, b[i]])
            i += n
    return bytes(out)


S, L = 3, 4
t5 = noise(5, 3)
t5[1, 1:4] = t5[1, 1]  # a repeat run for PackBits
rgb_tags = {258: (S, [8, 8, 8]), 259: (S, [1]), 262: (S, [2]), 277: (S, [3])}
# big endian, strips of 2 rows (the last one short), each compression
rows = [t5[y].tobytes() for y in range(3)]
strips = [rows[0] + rows[1], rows[2]]
files["tiff-be-raw-strips.tif"] = tiff(5, 3, {**rgb_tags, 278: (L, [2])}, strips, big_endian=True)
files["tiff-be-packbits.tif"] = tiff(5, 3, {**rgb_tags, 259: (S, [32773]), 278: (L, [2])}, [packbits(s) for s in strips], big_endian=True)
files["tiff-be-deflate-old-code.tif"] = tiff(5, 3, {**rgb_tags, 259: (S, [32946]), 278: (L, [2])}, [zlib.compress(s) for s in strips], big_endian=True)
# tiles of 16x16 over a 21x5 image: two tiles across, padded on the right and below
t21 = noise(21, 5)
tile = lambda tx: np.pad(t21[:, 16 * tx:16 * tx + 16], ((0, 11), (0, 16 - t21[:, 16 * tx:16 * tx + 16].shape[1]), (0, 0))).tobytes()
files["tiff-tiles.tif"] = tiff(21, 5, {**rgb_tags, 322: (S, [16]), 323: (S, [16])}, [tile(0), tile(1)])
files["tiff-be-tiles-deflate.tif"] = tiff(21, 5, {**rgb_tags, 259: (S, [8]), 322: (S, [16]), 323: (S, [16])},
                                          [zlib.compress(tile(0)), zlib.compress(tile(1))], big_endian=True)
# min-is-white 8-bit and 1-bit (rows padded to whole bytes), 4-bit gray and palette
g5 = noise(5, 3, 1)
files["tiff-gray-min-is-white.tif"] = tiff(5, 3, {258: (S, [8]), 259: (S, [1]), 262: (S, [0])}, [g5.tobytes()])
b9 = noise(9, 5, 1) > 127
files["tiff-1bit-min-is-white.tif"] = tiff(9, 5, {259: (S, [1]), 262: (S, [0])}, [np.packbits(b9, axis=1).tobytes()])
n4 = rng.integers(0, 16, (3, 5), dtype=np.uint8)
pack4 = np.concatenate([n4, np.zeros((3, 1), np.uint8)], 1)
pack4 = (pack4[:, 0::2] << 4 | pack4[:, 1::2]).tobytes()
files["tiff-gray4.tif"] = tiff(5, 3, {258: (S, [4]), 259: (S, [1]), 262: (S, [1])}, [pack4])
cmap = [int(v) for v in rng.integers(0, 65536, 48)]
files["tiff-palette4-be.tif"] = tiff(5, 3, {258: (S, [4]), 259: (S, [1]), 262: (S, [3]), 320: (S, cmap)}, [pack4], big_endian=True)
# associated alpha (PIL unpremultiplies it), 16-bit RGB (big endian, deflate with the 16-bit horizontal predictor)
a5 = noise(5, 3, 4)
a5[..., :3] = (a5[..., :3].astype(int) * a5[..., 3:] // 255).astype(np.uint8)
a5[0, 0, 3] = 0
files["tiff-rgba-associated.tif"] = tiff(5, 3, {258: (S, [8] * 4), 259: (S, [1]), 262: (S, [2]), 277: (S, [4]), 338: (S, [1])}, [a5.tobytes()])
r16 = rng.integers(0, 65536, (3, 5, 3), dtype=np.uint16)
d16 = r16.astype(np.int64)
d16[:, 1:] = (d16[:, 1:] - d16[:, :-1]) % 65536
files["tiff-rgb16-be-deflate-predictor.tif"] = tiff(5, 3, {258: (S, [16] * 3), 259: (S, [8]), 262: (S, [2]), 277: (S, [3]), 317: (S, [2])},
                                                    [zlib.compress(d16.astype(">u2").tobytes())], big_endian=True)
# EXIF orientation 6 in the page's own tags: datasets' decode_example turns it upright (exif_transpose)
files["tiff-orientation-6.tif"] = tiff(5, 3, {**rgb_tags, 274: (S, [6])}, [t5.tobytes()])
# planar: one plane of each sample, strips of 2 rows (R, R, G, G, B, B), and big endian Deflate tiles with the predictor
files["tiff-planar-strips.tif"] = tiff(5, 3, {**rgb_tags, 278: (L, [2]), 284: (S, [2])},
                                       [t5[y0:y0 + 2, :, c].tobytes() for c in range(3) for y0 in (0, 2)])
pt = np.pad(t21, ((0, 11), (0, 11), (0, 0))).astype(np.int64).reshape(16, 2, 16, 3)  # rows, tile across, column, sample
pt[:, :, 1:] = (pt[:, :, 1:] - pt[:, :, :-1]) % 256  # the predictor works along each tile's rows
files["tiff-planar-tiles-be-deflate-predictor.tif"] = tiff(21, 5, {**rgb_tags, 259: (S, [8]), 284: (S, [2]), 317: (S, [2]), 322: (S, [16]), 323: (S, [16])},
    [zlib.compress(pt[:, tx, :, c].astype(np.uint8).tobytes()) for c in range(3) for tx in range(2)], big_endian=True)
# PlanarConfiguration 2 as Pillow 9.4 reads it: through libtiff (compressed) a 4-sample RGB without ExtraSamples is
# unpremultiplied (libtiff calls the sample unspecified alpha); its own reader (uncompressed) unpacks each plane with a
# letter of the raw mode, so a min-is-white plane is not inverted ("L;I"[0]), 16-bit planes are read as 8-bit ones
# (garbled: refused) and "LA"[1] is no raw mode (PIL fails)
p4 = noise(5, 3, 4)
p4[0, 0, 3] = 0
files["tiff-planar-rgba-no-extrasamples-deflate.tif"] = tiff(5, 3, {258: (S, [8] * 4), 259: (S, [8]), 262: (S, [2]), 277: (S, [4]), 284: (S, [2])},
                                                            [zlib.compress(p4[..., c].tobytes()) for c in range(4)])
files["tiff-planar-min-is-white.tif"] = tiff(5, 3, {258: (S, [8]), 259: (S, [1]), 262: (S, [0]), 284: (S, [2])}, [g5.tobytes()])
files["tiff-planar-rgb16-garbled.tif"] = tiff(5, 3, {258: (S, [16] * 3), 259: (S, [1]), 262: (S, [2]), 277: (S, [3]), 284: (S, [2])},
                                              [r16[..., c].astype("<u2").tobytes() for c in range(3)])
files["tiff-planar-la.tif"] = tiff(5, 3, {258: (S, [8, 8]), 259: (S, [1]), 262: (S, [1]), 277: (S, [2]), 284: (S, [2]), 338: (S, [2])},
                                   [noise(5, 3, 1).tobytes(), noise(5, 3, 1).tobytes()])
# FillOrder 2 (the first pixel in each byte's lowest bit): libtiff reverses the bits of every byte of a compressed strip
# before it decompresses it, PIL's own reader (uncompressed) reverses the bytes it unpacks ("1;IR", "L;R", "RGB;R"),
# except a plane's (PlanarConfiguration 2: the raw mode's letter "R" of "RGB;R"), and it has no "P;4R" (PIL fails)
rev = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
flip = lambda b: bytes(rev[v] for v in b)
f1 = noise(9, 5, 1) > 127
files["tiff-fillorder2-1bit-min-is-white.tif"] = tiff(9, 5, {259: (S, [1]), 262: (S, [0]), 266: (S, [2])}, [flip(np.packbits(f1, axis=1).tobytes())])
files["tiff-fillorder2-gray-be.tif"] = tiff(5, 3, {258: (S, [8]), 259: (S, [1]), 262: (S, [1]), 266: (S, [2])}, [flip(g5.tobytes())], big_endian=True)
files["tiff-fillorder2-rgb-deflate.tif"] = tiff(5, 3, {**rgb_tags, 259: (S, [8]), 266: (S, [2]), 278: (L, [2])}, [flip(zlib.compress(s)) for s in strips])
files["tiff-fillorder2-palette4-packbits.tif"] = tiff(5, 3, {258: (S, [4]), 259: (S, [32773]), 262: (S, [3]), 266: (S, [2]), 320: (S, cmap)}, [flip(packbits(pack4))])
files["tiff-fillorder2-palette4-raw.tif"] = tiff(5, 3, {258: (S, [4]), 259: (S, [1]), 262: (S, [3]), 266: (S, [2]), 320: (S, cmap)}, [flip(pack4)])
files["tiff-fillorder2-planar.tif"] = tiff(5, 3, {**rgb_tags, 266: (S, [2]), 284: (S, [2])}, [t5[..., c].tobytes() for c in range(3)])
# CMYK (PhotometricInterpretation 5), which PIL's convert("RGB") turns by cmyk2rgb (nk - MULDIV255(c, nk), nk = 255 - k):
# random inks over 16x16 pixels through PIL's libtiff LZW, planar Deflate strips, big endian PackBits with an extra
# sample ("CMYKX"), 16-bit little endian Deflate with the predictor (the high byte), and 16-bit big endian, which PIL 9.4
# has no mode for (Pillow 11 added "CMYK;16B")
files["tiff-cmyk-lzw.tif"] = save(Image.fromarray(noise(16, 16, 4), "CMYK"), "TIFF", compression="tiff_lzw")
c4 = noise(5, 3, 4)
cmyk_tags = {258: (S, [8] * 4), 259: (S, [1]), 262: (S, [5]), 277: (S, [4])}
files["tiff-cmyk-planar-deflate.tif"] = tiff(5, 3, {**cmyk_tags, 259: (S, [8]), 278: (L, [2]), 284: (S, [2])},
                                             [zlib.compress(c4[y0:y0 + 2, :, c].tobytes()) for c in range(4) for y0 in (0, 2)])
c5 = noise(5, 3, 5)
files["tiff-cmykx-be-packbits.tif"] = tiff(5, 3, {258: (S, [8] * 5), 259: (S, [32773]), 262: (S, [5]), 277: (S, [5]), 338: (S, [0])},
                                           [packbits(c5.tobytes())], big_endian=True)
c16 = rng.integers(0, 65536, (3, 5, 4), dtype=np.uint16)
p16 = c16.astype(np.int64)
p16[:, 1:] = (p16[:, 1:] - p16[:, :-1]) % 65536
files["tiff-cmyk16-deflate-predictor.tif"] = tiff(5, 3, {258: (S, [16] * 4), 259: (S, [8]), 262: (S, [5]), 277: (S, [4]), 317: (S, [2])},
                                                  [zlib.compress(p16.astype("<u2").tobytes())])
files["tiff-cmyk16-be.tif"] = tiff(5, 3, {258: (S, [16] * 4), 259: (S, [1]), 262: (S, [5]), 277: (S, [4])}, [c16.astype(">u2").tobytes()], big_endian=True)
# YCbCr (PhotometricInterpretation 6): PIL 9.4 reads compressed ones through libtiff's RGBA reader (tif_getimage.c,
# tif_color.c: YCbCrSubsampling 1x1 to 4x4, ReferenceBlackWhite and YCbCrCoefficients, per-strip flips for the
# Orientation tag, libtiff's quirks kept: 4x4 tiles cut by the right edge stepped through by 10-byte blocks, predictor
# rows that are not whole pixels left as stored, data that does not decompress whole kept as far as it did); its own
# reader takes uncompressed samples for RGBX (garbled)
def ycc(w, h, hs, vs, rows=None, tile=None):
    """Random YCbCr data in blocks of hs x vs Y samples then Cb, Cr: one chunk per strip of `rows` rows, or per tile"""
    bs = hs * vs + 2
    if tile:
        tw, th = tile
        return [noise(-(-th // vs) * -(-tw // hs) * bs, 1, 1).tobytes() for _ in range(-(-w // tw) * -(-h // th))]
    rows = rows or h
    return [noise(-(-min(rows, h - y) // vs) * -(-w // hs) * bs, 1, 1).tobytes() for y in range(0, h, rows)]


ycc_tags = {258: (S, [8, 8, 8]), 262: (S, [6]), 277: (S, [3])}
files["tiff-ycbcr-lzw.tif"] = save(Image.fromarray(noise(10, 12)).convert("YCbCr"), "TIFF", compression="tiff_lzw")
files["tiff-ycbcr-2x2-default-deflate.tif"] = tiff(9, 7, {**ycc_tags, 259: (S, [8]), 278: (S, [4])}, [zlib.compress(c) for c in ycc(9, 7, 2, 2, 4)])
files["tiff-ycbcr-4x2-packbits-be.tif"] = tiff(7, 5, {**ycc_tags, 259: (S, [32773]), 530: (S, [4, 2])}, [packbits(c) for c in ycc(7, 5, 4, 2)], big_endian=True)
files["tiff-ycbcr-4x4-tiles.tif"] = tiff(21, 19, {**ycc_tags, 259: (S, [8]), 322: (S, [16]), 323: (S, [16]), 530: (S, [4, 4])},
                                        [zlib.compress(c) for c in ycc(21, 19, 4, 4, tile=(16, 16))])
files["tiff-ycbcr-2x1-predictor.tif"] = tiff(21, 3, {**ycc_tags, 259: (S, [8]), 317: (S, [2]), 530: (S, [2, 1])}, [zlib.compress(c) for c in ycc(21, 3, 2, 1)])
files["tiff-ycbcr-1x2-orientation-3.tif"] = tiff(5, 7, {**ycc_tags, 259: (S, [8]), 274: (S, [3]), 278: (S, [2]), 530: (S, [1, 2])},
                                                 [zlib.compress(c) for c in ycc(5, 7, 1, 2, 2)])
files["tiff-ycbcr-planar.tif"] = tiff(5, 3, {**ycc_tags, 259: (S, [8]), 284: (S, [2]), 530: (S, [1, 1])}, [zlib.compress(noise(5, 3, 1).tobytes()) for _ in range(3)])
files["tiff-ycbcr-video-range-709.tif"] = tiff(6, 4, {**ycc_tags, 259: (S, [8]), 529: (5, [2126, 10000, 7152, 10000, 722, 10000]),
                                                      530: (S, [2, 2]), 532: (5, [16, 1, 235, 1, 128, 1, 240, 1, 128, 1, 240, 1])},
                                              [zlib.compress(c) for c in ycc(6, 4, 2, 2)])
files["tiff-ycbcr-planar-subsampled.tif"] = tiff(5, 3, {**ycc_tags, 259: (S, [8]), 284: (S, [2])}, [zlib.compress(noise(5, 3, 1).tobytes()) for _ in range(3)])
files["tiff-ycbcr-raw-garbled.tif"] = tiff(5, 3, {**ycc_tags, 259: (S, [1]), 530: (S, [1, 1])}, [noise(5, 3).tobytes() + noise(5, 3, 1).tobytes()])
files["tiff-ycbcr-deflate-ends-early.tif"] = tiff(6, 4, {**ycc_tags, 259: (S, [8]), 530: (S, [1, 1])}, [zlib.compress(ycc(6, 4, 1, 1)[0])[:-20]])
rng.bit_generator.state = rng_state

# ---- formats PIL reads that DiffusersSharp does not decode: refused, naming the file and the format
files["jpeg2000.jp2"] = save(rgb, "JPEG2000")
files["jpeg2000-codestream.j2k"] = save(rgb, "JPEG2000")
files["ppm.ppm"] = save(rgb, "PPM")
files["pgm.pgm"] = save(gray, "PPM")
files["tga.tga"] = save(rgb, "TGA")
files["pcx.pcx"] = save(rgb, "PCX")
files["sgi.sgi"] = save(rgb, "SGI")
files["sgi.rgb"] = save(rgb, "SGI")
files["dds.dds"] = save(rgba, "DDS")
files["im.im"] = save(rgb, "IM")
files["blp.blp"] = save(pal.convert("RGB").quantize(256), "BLP")
files["xbm.xbm"] = save(Image.fromarray(noise(8, 5, 1) > 127), "XBM")
files["msp.msp"] = save(Image.fromarray(noise(16, 5, 1) > 127), "MSP")
# a TIFF under a PNG's name: PIL reads files by their content, so this is a TIFF too
files["tiff-named-png.png"] = files["tiff-rgb.tif"]
# and a PNG under a TIFF's name is a PNG
files["png-named-tif.tif"] = save(rgb, "PNG")

SUPPORTED = {"PNG", "JPEG", "BMP", "DIB", "GIF", "WEBP", "ICO", "CUR", "TIFF"}
REFUSED = {"tiff-jpeg.tif", "tiff-ycbcr.tif", "tiff-float.tif",  # PIL reads them; DiffusersSharp refuses them
           "tiff-planar-rgb16-garbled.tif", "tiff-ycbcr-raw-garbled.tif",  # PIL reads them garbled
           "tiff-ycbcr-deflate-ends-early.tif"}  # libtiff's RGBA reader keeps what decompressed
expected = {}
for name, data in sorted(files.items()):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # PIL refuses it: so must DiffusersSharp
        expected[name] = {"pil_error": re.sub(r" <_io.BytesIO object at 0x[0-9a-f]+>", "", f"{type(e).__name__}: {e}")}
        continue
    entry = {"format": im.format, "mode": im.mode}
    if im.format in SUPPORTED and name not in REFUSED:
        # A TIFF's load() turns it by its Orientation tag itself; Pillow 10.x-12.x then deletes the tag, so datasets'
        # exif_transpose does nothing, while 9.4 keeps it and turns the image a second time (and fails on a compressed
        # TIFF: its getexif re-reads the file libtiff closed). The expected pixels are the newer Pillows': load() alone
        if im.format != "TIFF" and im.getexif().get(0x0112) is not None:
            im = ImageOps.exif_transpose(im)
        out = im.convert("RGB")
        entry.update(width=out.width, height=out.height, pixels=base64.b64encode(out.tobytes()).decode())
    expected[name] = entry
with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump({"pil": Image.__version__, "files": expected, "constructed": constructed}, f, indent=1, sort_keys=True)
    f.write("\n")
print(len(files), "files;", sum("pixels" in e for e in expected.values()), "decoded;",
      sorted({e.get("format", "-") for e in expected.values()}))
