"""A worked example of your own encoder (docs/plugins.md): "ring", the sine and cosine of the
latitude at K frequencies and of the longitude at the lowest one — a toy, to show the contract.

    python -m experiments encoders --params --plugin docs/examples/my_encoder.py
    python -m experiments sweep --plugin docs/examples/my_encoder.py --encoders ring,sphereM+ --datasets U1
"""

import torch

from experiments.models import EncoderSpec, Interval, Param, PositionEncoder, register

class Ring(PositionEncoder):
    """features(lon, lat): float64 degrees of shape (1 or M, N, 1) -> (1 or M, N, out_dim) float64."""

    def __init__(self, M, batched, frequency_num, min_radius):
        super().__init__(M, batched)
        self.K = int(frequency_num)
        # a "member" hyper-parameter may differ between the M stacked members: keep it as (M, 1, 1)
        self._member_param("r_min", min_radius)
        self.out_dim = 2 * self.K + 2

    def features(self, lon, lat):
        phi = torch.deg2rad(lat)
        k = torch.arange(self.K, dtype=torch.float64, device=lat.device)
        f = 2.0 ** k / (self.r_min * 2.0 ** (self.K - 1))  # (M, 1, K): the finest frequency is 1/r_min
        lat_terms = torch.cat([torch.sin(phi * f), torch.cos(phi * f)], -1)  # (M, N, 2K)
        lam = torch.deg2rad(lon)
        lon_terms = torch.cat([torch.sin(lam), torch.cos(lam)], -1)  # (1 or M, N, 2): no per-member value
        return torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1)

register(EncoderSpec(
    name="ring", aliases=(),
    make=lambda M, batched, rng, hp: Ring(M, batched, hp["frequency_num"], hp["min_radius"]),
    params=(Param("frequency_num", int, 4, Interval(1, 32), help="K, latitude frequencies"),
            Param("min_radius", float, 0.01, Interval(0, None, "neither"), "member", help="radians")),
    network="ffn", antimeridian_continuous=True, pole_single_valued=False, dim="2K+2",
    description="toy plugin: latitude sin/cos at K octaves, longitude at one",
    # min_radius is a length: its finest period is 2π·r_min radians = 360·r_min degrees
    scales={"min_radius": ("min_wavelength", (360.0, 1.0))},
))
