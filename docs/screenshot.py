"""Screenshots of the built site with headless Chromium, checked to show a page.

    python docs/screenshot.py docs/_build/html docs/_build/screenshots

Takes the front page and the API page of fastrnn.LSTM, and fails (exit 1) unless each
PNG is a real render: the expected size, not blank (many colours, dark text on a light
background in a good part of it). A page that failed to load, or a theme whose CSS did
not arrive, gives a near-blank or unstyled image and fails here.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from matplotlib import image

PAGES = {"front-page": "index.html", "api-LSTM": "api/generated/fastrnn.LSTM.html"}
WIDTH, HEIGHT = 1280, 1000


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("no chromium on PATH (Debian: apt-get install chromium)")


def shoot(html, png):
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", f"--user-data-dir={profile}",
                        f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={png}",
                        "file://" + os.path.abspath(html)],
                       check=True, capture_output=True, timeout=120)


def check(png):
    """Problems with the screenshot, or [] when it shows a rendered page."""
    if not os.path.exists(png) or os.path.getsize(png) < 20_000:
        return [f"{png}: missing or under 20 KB"]
    pixels = image.imread(png)[..., :3]
    problems = []
    if pixels.shape[:2] != (HEIGHT, WIDTH):
        problems.append(f"{png}: {pixels.shape[1]}x{pixels.shape[0]}, not {WIDTH}x{HEIGHT}")
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    if colours < 50:
        problems.append(f"{png}: {colours} colours: blank or unstyled")
    grey = pixels.mean(axis=-1)
    text = (grey < 0.5).mean()
    if not 0.005 < text < 0.5:
        problems.append(f"{png}: {100 * text:.1f}% dark pixels: no text, or no page")
    return problems


def main(html_dir, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    problems = []
    for name, page in PAGES.items():
        html, png = os.path.join(html_dir, page), os.path.join(out_dir, name + ".png")
        if not os.path.exists(html):
            problems.append(f"{html}: not built")
            continue
        shoot(html, png)
        found = check(png)
        problems += found
        print(f"{png}: {'ok' if not found else 'BAD'} ({os.path.getsize(png)} bytes)")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
