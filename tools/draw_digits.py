#!/usr/bin/env python3
"""Draw the hand-drawn digit fixtures for kindling-data's digit_image tests.

Regenerate (from the repo root):
    python3 -m venv .venv && .venv/bin/pip install pillow
    .venv/bin/python tools/draw_digits.py

Each digit is a few pen strokes (polylines, as when drawing with a mouse) with a
little deterministic hand wobble, rendered 4x larger and box-filtered down so the
strokes are anti-aliased like a paint program's brush. The files cover the decoder
paths load_digit must handle: 8-bit grey, 16-bit grey, RGB, RGBA over a transparent
canvas, palette, and a JPEG; dark-on-light and light-on-dark.
Generated with Pillow 13.0.0.

Outputs (crates/kindling-data/tests/fixtures/digits/):
  seven_black_on_white.png  7, 200x200, 8-bit grey, two strokes
  seven_white_on_black.png  7, 200x200, 8-bit grey, same strokes inverted
  three_black_on_white.png  3, 160x160, 16-bit grey
  three_black_on_white.jpg  3, 160x160, the same drawing as a colour (YCbCr) JPEG
  zero_blue_on_white.png    0, 120x90, RGB, blue ink, an ellipse that overshoots
  one_black_on_white.png    1, 120x90, palette (16 colours)
  four_black_on_transparent.png  4, 150x200, RGBA, ink on a transparent canvas
"""

import math
import os
import random

from PIL import Image, ImageDraw

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "crates", "kindling-data", "tests", "fixtures", "digits")
SUPERSAMPLE = 4

# Strokes in canvas fractions (0..1), each a polyline drawn without lifting the pen.
SEVEN = [
    [(0.22, 0.22), (0.50, 0.20), (0.76, 0.21)],
    [(0.76, 0.21), (0.64, 0.42), (0.53, 0.63), (0.45, 0.82)],
]
THREE = [
    [(0.30, 0.25), (0.42, 0.17), (0.58, 0.17), (0.68, 0.26), (0.66, 0.38),
     (0.52, 0.47), (0.45, 0.48), (0.56, 0.50), (0.69, 0.59), (0.70, 0.72),
     (0.60, 0.82), (0.44, 0.84), (0.30, 0.77)],
]
ONE = [
    [(0.42, 0.30), (0.52, 0.16), (0.52, 0.86)],
]
FOUR = [
    [(0.58, 0.14), (0.40, 0.42), (0.26, 0.62), (0.74, 0.62)],
    [(0.62, 0.36), (0.62, 0.88)],
]


def ellipse_stroke(cx, cy, rx, ry, turns=1.08, points=48):
    """A hand-drawn 0: starts at the top and overshoots a little past where it began."""
    return [[(cx + rx * math.sin(2 * math.pi * turns * i / points),
              cy - ry * math.cos(2 * math.pi * turns * i / points))
             for i in range(points + 1)]]


ZERO = ellipse_stroke(0.5, 0.5, 0.17, 0.34)


def smooth(strokes, rounds=2):
    """Chaikin corner cutting: turns a coarse polyline into a curve, keeping its ends."""
    out = []
    for stroke in strokes:
        for _ in range(rounds):
            cut = [stroke[0]]
            for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
                cut += [(0.75 * x0 + 0.25 * x1, 0.75 * y0 + 0.25 * y1),
                        (0.25 * x0 + 0.75 * x1, 0.25 * y0 + 0.75 * y1)]
            stroke = cut + [stroke[-1]]
        out.append(stroke)
    return out


def wobble(strokes, amount, seed):
    """Small deterministic jitter so lines are not ruler-straight, like a mouse."""
    rng = random.Random(seed)
    return [[(x + rng.uniform(-amount, amount), y + rng.uniform(-amount, amount))
             for (x, y) in stroke] for stroke in strokes]


def render_ink(strokes, width, height, pen_px):
    """Anti-aliased ink coverage as an 'L' image: 255 = full ink, 0 = none."""
    big = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(big)
    pen = pen_px * SUPERSAMPLE
    for stroke in strokes:
        pts = [(x * width * SUPERSAMPLE, y * height * SUPERSAMPLE) for (x, y) in stroke]
        draw.line(pts, fill=255, width=round(pen), joint="curve")
        for (x, y) in pts:  # round pen tip at the ends and corners
            draw.ellipse([x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2], fill=255)
    return big.resize((width, height), Image.Resampling.BOX)


def ink_over(ink, paper_rgb, ink_rgb):
    """Composite ink coverage of one colour over paper of another, as RGB."""
    paper = Image.new("RGB", ink.size, paper_rgb)
    pen = Image.new("RGB", ink.size, ink_rgb)
    return Image.composite(pen, paper, ink)


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    out = lambda name: os.path.join(OUT_DIR, name)

    seven = render_ink(wobble(SEVEN, 0.01, seed=7), 200, 200, pen_px=14)
    ink_over(seven, (255, 255, 255), (0, 0, 0)).convert("L").save(out("seven_black_on_white.png"))
    seven.save(out("seven_white_on_black.png"))

    three = render_ink(smooth(wobble(THREE, 0.008, seed=3)), 160, 160, pen_px=11)
    three_rgb = ink_over(three, (250, 250, 247), (20, 20, 30))
    # 16-bit grey: Pillow's "I;16" mode writes a 16-bit PNG.
    three_16 = three_rgb.convert("L").point(lambda v: v * 257, mode="I").convert("I;16")
    three_16.save(out("three_black_on_white.png"))
    three_rgb.save(out("three_black_on_white.jpg"), quality=85)

    zero = render_ink(wobble(ZERO, 0.006, seed=0), 120, 90, pen_px=8)
    ink_over(zero, (255, 255, 255), (30, 60, 200)).save(out("zero_blue_on_white.png"))

    one = render_ink(wobble(ONE, 0.008, seed=1), 120, 90, pen_px=7)
    ink_over(one, (255, 255, 255), (0, 0, 0)).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=16).save(out("one_black_on_white.png"))

    four = render_ink(wobble(FOUR, 0.01, seed=4), 150, 200, pen_px=13)
    rgba = Image.new("RGBA", four.size, (0, 0, 0, 0))
    rgba.putalpha(four)  # black ink whose coverage is its alpha; the canvas is transparent
    rgba.save(out("four_black_on_transparent.png"))

    for name in sorted(os.listdir(OUT_DIR)):
        with Image.open(out(name)) as im:
            print(f"{name}: {im.size[0]}x{im.size[1]} {im.mode}")


if __name__ == "__main__":
    main()
