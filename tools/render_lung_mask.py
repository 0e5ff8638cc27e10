"""Draws a lung mask over a chest CT for the README: axial and coronal slices in the lung
window (W 1500, L -600), the right lung outlined in orange and the left one in cyan.

The mask comes from `cargo run -p pulmoseg-core --example render_lung_mask`, which writes one
byte per voxel (0 none, 1 right, 2 left) in the NIfTI's own voxel order (i fastest).

    python3 tools/render_lung_mask.py CT.nii.gz MASK.u8 OUT.png
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np

RIGHT, LEFT = 1, 2
COLOURS = {RIGHT: "#ff8c00", LEFT: "#00e5ff"}


def lung_window(hu):
    return np.clip((hu - (-600.0 - 750.0)) / 1500.0, 0.0, 1.0)


def main(ct_path, mask_path, out_path):
    image = nib.as_closest_canonical(nib.load(ct_path))
    original = nib.load(ct_path)
    hu = np.asanyarray(original.dataobj).astype(np.float32)
    labels = np.fromfile(mask_path, dtype=np.uint8).reshape(hu.shape, order="F")
    # Show both in RAS+ (canonical) order whatever the file's storage order.
    ornt = nib.orientations.io_orientation(original.affine)
    hu = nib.orientations.apply_orientation(hu, ornt)
    labels = nib.orientations.apply_orientation(labels, ornt)
    zooms = image.header.get_zooms()[:3]

    nx, ny, nz = hu.shape
    lung_z = np.nonzero(labels.any(axis=(0, 1)))[0]
    lung_y = np.nonzero(labels.any(axis=(0, 2)))[0]
    if lung_z.size:
        z_top, z_bottom = lung_z.max(), lung_z.min()
        axial = [int(z_bottom + f * (z_top - z_bottom)) for f in (0.2, 0.5, 0.8)]
    else:
        axial = [nz // 4, nz // 2, 3 * nz // 4]
    coronal = int(np.median(lung_y)) if lung_y.size else ny // 2

    fig, axes = plt.subplots(1, 4, figsize=(14, 4.0), facecolor="black")
    for ax, z in zip(axes[:3], axial):
        # Radiological view: patient's right on the image's left, anterior up.
        draw(ax, hu[::-1, ::-1, z].T, labels[::-1, ::-1, z].T, zooms[1] / zooms[0])
        ax.set_title(f"axial {z}", color="white", fontsize=9)
    draw(axes[3], hu[::-1, coronal, ::-1].T, labels[::-1, coronal, ::-1].T, zooms[2] / zooms[0])
    axes[3].set_title(f"coronal {coronal}", color="white", fontsize=9)
    fig.suptitle("lung mask: right lung orange, left lung cyan (W 1500 L -600)", color="white")
    fig.tight_layout()
    fig.savefig(out_path, dpi=72, facecolor="black")


def draw(ax, hu, labels, aspect):
    ax.imshow(lung_window(hu), cmap="gray", vmin=0, vmax=1, aspect=aspect, interpolation="nearest")
    for label, colour in COLOURS.items():
        if (labels == label).any():
            ax.contour(labels == label, levels=[0.5], colors=colour, linewidths=0.8)
    ax.axis("off")


if __name__ == "__main__":
    main(*sys.argv[1:4])
