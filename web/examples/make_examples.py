# Writes the demo's example images (our own drawings, CC0) as PNGs without any imaging library.
import math, struct, zlib, sys
def png(path, w, h, pixel):
    raw = b"".join(b"\x00" + bytes(c for x in range(w) for c in pixel(x, y)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)
S = 96
def disc(x, y):
    return (230, 90, 40) if (x - 48) ** 2 + (y - 44) ** 2 < 30 ** 2 else (30, 60, 110)
def stripes(x, y):
    return (240, 220, 60) if (x // 12) % 2 == 0 else (40, 40, 40)
def checker(x, y):
    return (250, 250, 250) if ((x // 16) + (y // 16)) % 2 == 0 else (30, 120, 60)
def ring(x, y):
    r = math.hypot(x - 48, y - 48)
    return (120, 60, 200) if 22 < r < 36 else (230, 230, 210)
out = sys.argv[1]
for name, f in [("disc", disc), ("stripes", stripes), ("checker", checker), ("ring", ring)]:
    png(f"{out}/{name}.png", S, S, f)
