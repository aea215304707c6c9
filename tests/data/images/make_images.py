#!/usr/bin/python3
"""Regenerate the tiny test images of the vision unit tests (run with
/usr/bin/python3 from this folder).  Pixel (x, y) of the 16x8 pattern is
R = x*16, G = y*32, B = 200 (RGB order), so tests can check exact values
for lossless formats."""
import struct
import numpy as np
from PIL import Image

W, H = 16, 8
rgb = np.zeros((H, W, 3), np.uint8)
for y in range(H):
    for x in range(W):
        rgb[y, x] = (x * 16, y * 32, 200)
im = Image.fromarray(rgb)
im.save("rgb16x8.png")
Image.fromarray(np.dstack([rgb, np.full((H, W), 128, np.uint8)])).save("rgba16x8.png")
Image.fromarray((np.arange(W * H).reshape(H, W) * 500).astype(np.uint16)).save("gray16bit.png")
im.convert("P", palette=Image.ADAPTIVE, colors=16).save("pal16x8.png")
im.save("rgb16x8.webp", lossless=True)
im.save("rgb16x8.jpg", quality=95)
# EXIF orientation 6 (rotate 90 clockwise for display)
exif = Image.Exif()
exif[0x0112] = 6
im.save("rgb16x8_exif6.jpg", quality=95, exif=exif.tobytes())
# A progressive JPEG and a gray JPEG
im.save("rgb16x8_prog.jpg", quality=90, progressive=True)
im.convert("L").save("gray16x8.jpg", quality=95)


def bmp(path, bpp, topdown=False):
    rows = []
    pal = b""
    if bpp == 8:
        # palette index = x + y*16 mod 256 -> colour (i, 255-i, 7)
        pal = b"".join(struct.pack("<BBBB", 7, 255 - i, i, 0) for i in range(256))
    for y in range(H):
        r = bytearray()
        for x in range(W):
            R, G, B = (int(v) for v in rgb[y, x])
            if bpp == 24:
                r += bytes((B, G, R))
            elif bpp == 32:
                r += bytes((B, G, R, 255))
            else:
                r += bytes(((x + y * 16) % 256,))
        while len(r) % 4:
            r += b"\0"
        rows.append(bytes(r))
    if not topdown:
        rows = rows[::-1]
    data = b"".join(rows)
    off = 14 + 40 + len(pal)
    hdr = b"BM" + struct.pack("<IHHI", off + len(data), 0, 0, off)
    dib = struct.pack("<IiiHHIIiiII", 40, W, -H if topdown else H, 1, bpp, 0, len(data),
                      2835, 2835, 256 if bpp == 8 else 0, 0)
    open(path, "wb").write(hdr + dib + pal + data)


bmp("rgb16x8_24.bmp", 24)
bmp("rgb16x8_32td.bmp", 32, topdown=True)
bmp("pal16x8_8.bmp", 8)
# Animated WebP (two frames): refused with ERR_UNSUPPORTED
im.save("anim.webp", save_all=True, append_images=[im.transpose(Image.FLIP_LEFT_RIGHT)],
        lossless=True, duration=100)
