"""Real, orthonormal spherical harmonics for any degree, by a stable three-term recurrence.

Closed-form tables go NaN above degree ~30 (MarcCoru/locationencoder#1); the recurrence on fully
normalised associated Legendre functions P̄ₗᵐ (Holmes & Featherstone 2002) is stable to high degree
in float64. Convention: θ is the colatitude (cos θ = sin lat), φ the longitude, no Condon–Shortley
phase in the real form, so that

    Yₗ⁰ = P̄ₗ⁰(cos θ),  Yₗᵐ = √2 P̄ₗᵐ(cos θ) cos mφ (m > 0),  Yₗ⁻ᵐ = √2 P̄ₗᵐ(cos θ) sin mφ,

with ∫ Yₗᵐ Yₗ'ᵐ' dΩ = δ. Features are ordered l = 0..L−1, m = −l..l: L² of them.
"""

from __future__ import annotations

import math

import torch


def _recurrence_coefficients(L: int):
    a = torch.zeros(L, L, dtype=torch.float64)
    b = torch.zeros(L, L, dtype=torch.float64)
    for l in range(2, L):
        for m in range(l - 1):
            a[l, m] = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b[l, m] = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
    return a, b


def real_spherical_harmonics(lon_rad, lat_rad, L: int):
    """(..., L²) float64 values of the real spherical harmonics of degree < L."""
    x = torch.sin(lat_rad).to(torch.float64)  # cos θ
    s = torch.cos(lat_rad).to(torch.float64).clamp_min(0.0)  # sin θ ≥ 0
    phi = lon_rad.to(torch.float64)
    a, b = _recurrence_coefficients(L)
    a, b = a.to(x.device), b.to(x.device)
    rows = [torch.full_like(x, 1.0 / math.sqrt(4 * math.pi))[None]]  # rows[l] has shape (l + 1, ...)
    for l in range(1, L):
        prev = rows[l - 1]
        new = []
        if l >= 2:
            expand = (slice(0, l - 1),) + (None,) * x.dim()
            new.append(a[l, :l - 1][expand] * (x * prev[:l - 1] - b[l, :l - 1][expand] * rows[l - 2]))
        new.append((math.sqrt(2 * l + 1) * x * prev[l - 1])[None])  # P̄ₗ^(l−1)
        new.append((math.sqrt((2 * l + 1) / (2 * l)) * s * prev[l - 1])[None])  # P̄ₗˡ
        rows.append(torch.cat(new, 0))
    out = []
    m_all = torch.arange(1, L, dtype=torch.float64, device=x.device)
    cos_m = torch.cos(m_all.view(-1, *[1] * x.dim()) * phi)  # (L−1, ...)
    sin_m = torch.sin(m_all.view(-1, *[1] * x.dim()) * phi)
    r2 = math.sqrt(2.0)
    for l in range(L):
        p = rows[l]
        neg = [r2 * p[m] * sin_m[m - 1] for m in range(l, 0, -1)]
        pos = [r2 * p[m] * cos_m[m - 1] for m in range(1, l + 1)]
        out.extend(neg + [p[0]] + pos)
    return torch.stack(out, -1)
