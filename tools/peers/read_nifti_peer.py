#!/usr/bin/env python3
"""nibabel's time to read a NIfTI as float32, the peer of core/benches/read_nifti.rs.

  read_nifti_peer.py PATH [REPEATS]

Prints one JSON line: the best of REPEATS (default 3) wall times in seconds for reading the
file's bytes alone ("file_read_s") and for nibabel.load(PATH).get_fdata(dtype=float32)
("load_s", which includes its own file read), plus the volume's shape as a sanity check.
Exits 3 when nibabel is not installed.
"""

import json
import sys
import time

try:
    import nibabel as nib
    import numpy as np
except ImportError as err:
    print(json.dumps({"error": f"nibabel unavailable: {err}"}))
    sys.exit(3)


def best_of(repeats, action):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    path = sys.argv[1]
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3

    def read_bytes():
        with open(path, "rb") as f:
            return len(f.read())

    file_read_s, _ = best_of(repeats, read_bytes)
    load_s, data = best_of(repeats, lambda: nib.load(path).get_fdata(dtype=np.float32))
    print(json.dumps({
        "file_read_s": file_read_s,
        "load_s": load_s,
        "shape": list(data.shape),
        "nibabel": nib.__version__,
    }))


if __name__ == "__main__":
    main()
