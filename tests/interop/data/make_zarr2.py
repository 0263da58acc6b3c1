"""Writes tests/interop/data/zarr2.zarr with zarr-python 2 (run once, in a side environment)."""
import json, sys
import numpy as np, zarr, numcodecs
root = zarr.open_group(sys.argv[1], mode="w")
root.attrs["title"] = "written by zarr-python %s" % zarr.__version__
s = root.create_dataset("strings", shape=(6,), chunks=(2,), dtype=object, object_codec=numcodecs.VLenUTF8())
s[:4] = np.array(["a", "bb", "", "dddd"], dtype=object)  # the last chunk never written
f = root.create_dataset("floats", shape=(6, 7), chunks=(4, 4), dtype="<f4", fill_value=np.nan,
                        compressor=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.BITSHUFFLE))
f[:4, :4] = np.arange(16, dtype="f4").reshape(4, 4)
t = root.create_dataset("times", shape=(4,), chunks=(3,), dtype="<M8[s]")
t[:3] = np.array(["2001-01-01T00", "NaT", "2001-01-02T12"], dtype="M8[s]")
i = root.create_dataset("ints", shape=(3, 3), chunks=(2, 2), dtype=">i8", compressor=numcodecs.Zlib(1),
                        filters=[numcodecs.Delta(dtype=">i8")], order="F")
i[...] = np.arange(9).reshape(3, 3) * 7
i.attrs["units"] = "m"
zarr.consolidate_metadata(sys.argv[1])
expect = {"strings": s[:4].tolist(), "strings_fill": repr(s.fill_value), "floats": f[:].tolist(),
          "times": t[:].astype("int64").tolist(), "ints": i[:].tolist(), "title": root.attrs["title"]}
json.dump(expect, open(sys.argv[1] + ".expected.json", "w"), default=str)
