#!/usr/bin/env python3
"""Python side of `cargo bench -p pulmoseg-core --bench metrics`.

Builds the benchmark's mask pair on a CT's grid exactly as core/benches/metrics.rs does
(G = voxels above 200 HU, P = G dilated by one voxel with the 6-neighbour cross, voxels
outside the grid false), times DeepMind's surface-distance on it and prints one JSON object
with the values and the seconds each step took.

Usage: python3 tools/peers/metrics_peer.py ../shared/data/covid-ct-md/P001.nii.gz [tolerance_mm]
Exit status 2 with a message on stderr when a package is missing.
"""

import json
import sys
import time


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    path = sys.argv[1]
    tolerance_mm = float(sys.argv[2]) if len(sys.argv) == 3 else 3.0

    try:
        import nibabel as nib
        import numpy as np
        from scipy import ndimage

        # surface-distance still uses the aliases NumPy 2 removed.
        np.Inf = np.inf
        np.NaN = np.nan
        import surface_distance as sd
    except ImportError as err:
        print(f"metrics peer: missing Python package: {err}", file=sys.stderr)
        return 2

    image = nib.load(path)
    hu = np.asanyarray(image.dataobj)
    spacing = [float(z) for z in image.header.get_zooms()[:3]]
    truth = hu > 200
    cross = ndimage.generate_binary_structure(3, 1)
    prediction = ndimage.binary_dilation(truth, cross)

    start = time.perf_counter()
    dice = sd.compute_dice_coefficient(truth, prediction)
    dice_s = time.perf_counter() - start

    start = time.perf_counter()
    distances = sd.compute_surface_distances(truth, prediction, spacing)
    distances_s = time.perf_counter() - start

    start = time.perf_counter()
    nsd = sd.compute_surface_dice_at_tolerance(distances, tolerance_mm)
    nsd_s = time.perf_counter() - start

    result = {
        "dims": list(truth.shape),
        "spacing_mm": spacing,
        "tolerance_mm": tolerance_mm,
        "truth_voxels": int(truth.sum()),
        "prediction_voxels": int(prediction.sum()),
        "dice": float(dice),
        "nsd": float(nsd),
        "border_corners_truth": int(len(distances["surfel_areas_gt"])),
        "border_corners_prediction": int(len(distances["surfel_areas_pred"])),
        "surface_area_truth_mm2": float(np.sum(distances["surfel_areas_gt"])),
        "seconds": {
            "dice": dice_s,
            "surface_distances": distances_s,
            "surface_dice": nsd_s,
        },
        "versions": {"numpy": np.__version__, "python": sys.version.split()[0]},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
