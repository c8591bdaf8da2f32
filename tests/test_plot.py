import numpy as np
from matplotlib.image import imread

from synth import datasets, plot


def test_maps_draw_offline_from_shipped_coastlines(tmp_path, no_network):
    ds = [datasets.generate("S4.3", 0), datasets.generate("U1", 0)]
    for proj in plot.PROJECTIONS:
        written = plot.save_figure(plot.dataset_figure(ds, proj, globe=ds[0]), tmp_path / f"m_{proj}")
        assert [p.suffix for p in written] == [".png", ".pdf"]
        img = imread(written[0])
        assert img.shape[0] > 300 and img.shape[1] > 600
        assert np.std(img[..., :3]) > 0.05  # not a blank canvas
    assert (plot.DATA_DIR / "shapefiles/natural_earth/physical/ne_110m_coastline.shp").exists()
