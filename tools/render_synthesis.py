"""Render sample slices of `pulmoseg synth` output for the README (docs/synthesis_samples.png).

Each row shows one slice of one synthetic case in the lung window (W 1500, L -600), plainly
and with the infiltrate mask outlined, in radiological convention (the patient's right on the
viewer's left, anterior / superior at the top). Axial slices are picked where the mask is
largest; the second row is a coronal slice through the first case listed.

    pulmoseg synth --input ../shared/data/covid-ct-md/normal001.nii.gz \
        ../shared/data/covid-ct-md/normal002.nii.gz --output /tmp/synth --cases-per-scan 8 --seed 3
    python3 tools/render_synthesis.py /tmp/synth docs/synthesis_samples.png \
        normal001_syn006 normal001_syn001 normal002_syn002 normal002_syn001

Needs numpy, nibabel, matplotlib (development only).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def load(path):
    image = nib.as_closest_canonical(nib.load(str(path)))
    return np.asarray(image.dataobj).astype(np.float32), image.header.get_zooms()[:3]


def window(hu):
    return np.clip((hu - (-600.0 - 750.0)) / 1500.0, 0.0, 1.0)


def axial(volume, k):
    # RAS array [x, y, z]: rows y (anterior on top), columns x (right on the left).
    return volume[:, :, k].T[::-1, ::-1]


def coronal(volume, j):
    return volume[:, j, :].T[::-1, ::-1]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    root, out, cases = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    rows = []
    for n, case in enumerate(cases):
        hu, zooms = load(root / "images" / f"{case}.nii.gz")
        mask, _ = load(root / "masks" / f"{case}.nii.gz")
        area = mask.sum(axis=(0, 1))
        k = int(np.argmax(area))
        rows.append((f"{case} axial", axial(hu, k), axial(mask, k), zooms[1] / zooms[0]))
        if n == 0:
            j = int(np.argmax(mask.sum(axis=(0, 2))))
            rows.append((f"{case} coronal", coronal(hu, j), coronal(mask, j), zooms[2] / zooms[0]))

    fig, axes = plt.subplots(len(rows), 2, figsize=(5.6, 2.8 * len(rows)), dpi=100)
    for (title, image, mask, aspect), (left, right) in zip(rows, axes):
        for ax in (left, right):
            ax.imshow(window(image), cmap="gray", vmin=0, vmax=1, aspect=aspect,
                      interpolation="lanczos")
            ax.set_axis_off()
        right.contour(mask > 0.5, levels=[0.5], colors=["#ff3030"], linewidths=0.8,
                      antialiased=False)
        left.set_title(title, fontsize=8)
        right.set_title("mask outline", fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[:, :, :3]
    # A 64-colour palette (63 greys and the outline red) keeps the PNG small for the README.
    palette = [v for g in np.linspace(0, 255, 63).astype(int) for v in (g, g, g)] + [255, 48, 48]
    palette_image = Image.new("P", (1, 1))
    palette_image.putpalette(palette + [0] * (768 - len(palette)))
    Image.fromarray(rgb).quantize(palette=palette_image, dither=Image.Dither.NONE).save(
        out, optimize=True
    )
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
