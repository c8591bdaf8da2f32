"""The encoders' maths: test vectors from the public code, the paper's theorems, dimensions,
spherical-harmonic orthonormality, continuity and pole behaviour, batching, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy import special

from synth import SynthError
from synth.sphere import great_circle, lonlat_to_xyz
from experiments.models import encoders as E
from experiments.models.harmonics import real_spherical_harmonics

X = torch.tensor([[30.0, 60.0]])


def G(name, dtype=torch.float64, **hp):
    g = E.position_encoder(name, **hp)
    g.out_dtype = dtype
    return g


def random_lonlat(n, seed=0):
    r = np.random.default_rng(seed)
    return torch.tensor(np.stack([r.uniform(-180, 180, n), np.rad2deg(np.arcsin(r.uniform(-1, 1, n)))], -1))


# encoders-spec.md section 2.3 (computed with the Sphere2Vec code at lon 30, lat 60)
VECTORS = {
    ("sphereC", 2, 0.1, 1.0): [-0.866025, -0.25, 0.433013, 0.866025, 0.433013, 0.25],
    ("sphereM", 2, 0.1, 1.0): [-0.866025, -0.433013, 0.25, -0.25, -0.433013, 0.866025, 0.433013, 0.433013, 0.25, 0.25],
    ("grid", 2, 1.0, 360.0): [-0.988032, 0.154251, 0.083237, 0.996530, -0.304811, -0.952413, 0.165896, 0.986143],
    ("theory", 2, 1.0, 360.0): [-0.988032, 0.154251, -0.672504, 0.740093, 0.834970, -0.550295, 0.083237, 0.996530,
                                0.102491, 0.994734, -0.184934, 0.982751],
}


@pytest.mark.parametrize("key", list(VECTORS))
def test_public_code_test_vectors(key):
    name, S, rmin, rmax = key
    out = G(name, frequency_num=S, min_radius=rmin, max_radius=rmax)(X)[0].numpy()
    assert np.allclose(out, VECTORS[key], atol=1e-6)


def test_hand_computed_values_in_both_units():
    lam, phi = math.radians(30), math.radians(60)
    assert np.allclose(G("xyz")(X)[0], [math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)])
    assert np.allclose(G("wrap")(X)[0], [math.sin(lam), math.sin(2 * phi), math.cos(lam), math.cos(2 * phi)])
    nerf = G("nerf", frequency_num=2)(X)[0].numpy()
    p = [math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)]
    assert np.allclose(nerf[:6], [math.sin(math.pi * f * c) for c in p for f in (1, 2)])
    # sphereM+ at S = 1 (the single scale f = 1/r_max = 1) in radians
    out = G("sphereM+", frequency_num=1)(X)[0].numpy()
    sp, cp, sl, cl = math.sin(phi), math.cos(phi), math.sin(lam), math.cos(lam)
    assert np.allclose(out, [sp, cp, sl, cl, cp * cl, cp * cl, cp * sl, cp * sl])
    # grid at S = 1 works in degrees: f = 1/360 per degree
    assert np.allclose(G("grid", frequency_num=1)(X)[0], [math.sin(30 / 360), math.cos(30 / 360),
                                                          math.sin(60 / 360), math.cos(60 / 360)])


def test_scale_frequencies_follow_the_geometric_list():
    g = G("sphereC", frequency_num=32, min_radius=1e-3, max_radius=1.0)
    f = E.scale_frequencies(32, g.r_min, g.r_max).flatten().numpy()
    assert f[0] == pytest.approx(1000) and f[1] == pytest.approx(800.25, rel=1e-5) and f[-1] == pytest.approx(1)
    assert f[-2] == pytest.approx(1.2496, rel=1e-4)


def test_theorem_2_sphereC_inner_product_is_cosine_of_angle():
    a, b = random_lonlat(2000, 1), random_lonlat(2000, 2)
    g = G("sphereC", frequency_num=1)
    inner = (g(a) * g(b)).sum(-1).numpy()
    assert np.abs(inner - np.cos(great_circle(a.numpy(), b.numpy()))).max() < 1e-5


@pytest.mark.parametrize("name", ["sphereC", "sphereC+", "sphereM", "sphereM+", "sphereDFS"])
def test_sphere_encoders_are_injective_with_a_chord_bound(name):
    # With r_max = 1 the coarsest scale has f = 1, and each of these encoders contains the terms
    # sin φ, cos φ cos λ, cos φ sin λ of χ(x) at that scale (sphereM/M+ twice, DFS through its
    # cross products). Other terms only add to the distance, so ‖G(x1) − G(x2)‖ ≥ ‖χ(x1) − χ(x2)‖
    # = 2 sin(Δ/2): distinct points never collide, down to tiny separations.
    pts = random_lonlat(600, 3).numpy()
    near = pts[:200] + np.random.default_rng(4).normal(0, 1e-3, (200, 2))
    near[:, 1] = np.clip(near[:, 1], -90, 90)
    near[:, 0] = np.clip(near[:, 0], -180, 179.999999)
    pts = np.concatenate([pts, near])
    g = G(name, frequency_num=8, min_radius=1e-3)
    f = g(torch.tensor(pts)).numpy()
    i, j = np.triu_indices(len(pts), 1)
    dist = np.linalg.norm(f[i] - f[j], axis=1)
    chord = 2 * np.sin(great_circle(pts[i], pts[j]) / 2)
    assert np.all(dist >= chord * (1 - 1e-9) - 1e-12)
    assert dist.min() > 0


def test_grid_distance_along_a_parallel_is_independent_of_latitude():
    g = G("grid", frequency_num=16, min_radius=1.0)
    d = []
    for lat in (-80.0, -30.0, 0.0, 45.0, 89.0):
        f = g(torch.tensor([[10.0, lat], [55.0, lat]]))
        d.append(float(torch.linalg.norm(f[0] - f[1])))
    assert np.ptp(d) < 1e-12
    s = G("sphereC", frequency_num=16)  # a spherical encoder does depend on latitude there
    ds = [float(torch.linalg.norm(torch.diff(s(torch.tensor([[10.0, lat], [55.0, lat]])), dim=0))) for lat in (0.0, 80.0)]
    assert abs(ds[0] - ds[1]) > 0.1


@pytest.mark.parametrize("name,S,expected", [("sphereC", 16, 48), ("sphereC+", 16, 96), ("sphereM", 16, 80),
                                             ("sphereM+", 16, 128), ("sphereDFS", 8, 4 * 64 + 32), ("grid", 16, 64),
                                             ("theory", 16, 96), ("nerf", 16, 96), ("xyz", None, 3),
                                             ("wrap", None, 4), ("wrap_ffn", None, 4)])
def test_dimensions_match_paper_table_3(name, S, expected):
    hp = {} if S is None else {"frequency_num": S}
    g = E.position_encoder(name, **hp)
    assert g.out_dim == expected == g(random_lonlat(5).float()).shape[-1]


def test_other_dimensions():
    assert E.position_encoder("rbf", num_anchors=37).out_dim == 37
    assert E.position_encoder("rff", frequency_num=21).out_dim == 21
    assert E.position_encoder("tile_ffn", embed_dim=12).out_dim == 12
    assert E.position_encoder("spherical_harmonics", legendre_polys=7).out_dim == 49


@pytest.mark.parametrize("L", [20, 40])
def test_spherical_harmonics_gram_matrix_is_identity(L):
    # Gauss-Legendre in cos θ (exact for the Legendre part) x uniform in φ (exact for sin/cos mφ)
    z, w = np.polynomial.legendre.leggauss(L + 2)
    phi = np.linspace(-np.pi, np.pi, 2 * L + 2, endpoint=False)
    lat = np.arcsin(z)
    LAT, PHI = np.meshgrid(lat, phi, indexing="ij")
    W = (w[:, None] * np.full_like(PHI, 2 * np.pi / len(phi))).ravel()
    Y = real_spherical_harmonics(torch.tensor(PHI.ravel()), torch.tensor(LAT.ravel()), L).numpy()
    gram = (Y * W[:, None]).T @ Y
    assert np.abs(gram - np.eye(L * L)).max() < 1e-4


def _scipy_real_sh(l, m, lon, lat):
    theta, phi = np.pi / 2 - lat, lon
    y = special.sph_harm_y(l, abs(m), theta, phi)
    if m == 0:
        return y.real
    return np.sqrt(2) * (-1) ** m * (y.real if m > 0 else y.imag)


def test_spherical_harmonics_match_scipy_and_stay_finite_at_high_degree():
    r = np.random.default_rng(5)
    lon, lat = r.uniform(-np.pi, np.pi, 7), np.arcsin(r.uniform(-1, 1, 7))
    lat[0] = np.pi / 2  # a pole
    L = 12
    ours = real_spherical_harmonics(torch.tensor(lon), torch.tensor(lat), L).numpy()
    k = 0
    for l in range(L):
        for m in range(-l, l + 1):
            assert np.allclose(ours[:, k], _scipy_real_sh(l, m, lon, lat), atol=1e-10), (l, m)
            k += 1
    high = real_spherical_harmonics(torch.tensor(lon), torch.tensor(lat), 60)
    assert torch.isfinite(high).all() and high.abs().max() < 10


CONTINUOUS = ["xyz", "wrap", "wrap_ffn", "nerf", "spherical_harmonics"]
SINGLE_VALUED_AT_POLES = ["xyz", "nerf", "spherical_harmonics"]


# rbf anchors on both sides of the antimeridian, so the test point is inside their kernels
NEAR = {"rbf": {"num_anchors": 2, "anchor_points": np.array([[179.5, 20.0], [-179.5, 20.0]])}}


@pytest.mark.parametrize("name", E.available())
def test_antimeridian_continuity_is_as_recorded(name):
    g = G(name, **NEAR.get(name, {}))
    eps = 1e-9  # NeRF's finest frequency is π·2^15, so continuity shows only at small offsets
    f = g(torch.tensor([[180.0 - eps, 20.0], [-180.0 + eps, 20.0]], dtype=torch.float64)).detach()
    gap = float(torch.linalg.norm(f[0] - f[1]) / (torch.linalg.norm(f[0]) + 1e-12))
    assert E.spec(name).antimeridian_continuous == (name in CONTINUOUS)
    if name in CONTINUOUS:
        assert gap < 1e-3
    else:  # a finding the reports show: these codes jump at the antimeridian
        assert gap > 1e-2


@pytest.mark.parametrize("name", E.available())
def test_pole_encoding_longitude_independence_is_as_recorded(name):
    g = G(name, **({"anchor_points": np.array([[0.0, 89.0], [90.0, 89.5]]), "num_anchors": 2, "kernel_size": 100.0} if name == "rbf" else {}))
    lons = torch.linspace(-180, 170, 8, dtype=torch.float64)
    f = g(torch.stack([lons, torch.full_like(lons, 90.0)], -1)).detach()
    spread = float((f - f[0]).abs().max())
    assert E.spec(name).pole_single_valued == (name in SINGLE_VALUED_AT_POLES)
    if name in SINGLE_VALUED_AT_POLES:
        assert spread < 1e-6
    else:
        assert spread > 1e-3


@pytest.mark.parametrize("name,hp", [("sphereM+", {"min_radius": [1e-3, 1e-2, 0.2]}),
                                     ("grid", {"min_radius": [0.5, 5.0], "max_radius": [360.0, 720.0]}),
                                     ("rbf", {"kernel_size": [0.5, 1.0, 10.0], "seed": [0, 1, 2]}),
                                     ("rff", {"kernel_size": [0.5, 2.0], "seed": [3, 4]}),
                                     ("sphereDFS", {"min_radius": [1e-2, 1e-1], "frequency_num": 4})])
def test_batched_configurations_equal_separate_calls(name, hp):
    x = random_lonlat(50, 6)
    gb = G(name, **hp)
    M = gb.n_members
    out = gb(x)
    assert out.shape == (M, 50, gb.out_dim)
    per_member = torch.stack([random_lonlat(50, 10 + m) for m in range(M)])
    out2 = gb(per_member)
    for m in range(M):
        single = {k: (v[m] if isinstance(v, list) else v) for k, v in hp.items()}
        gs = G(name, **single)
        assert torch.allclose(out[m], gs(x), atol=1e-12, rtol=0)
        assert torch.allclose(out2[m], gs(per_member[m]), atol=1e-12, rtol=0)


def test_batched_models_equal_separate_models():
    x = random_lonlat(40, 7).float()
    mb = E.build("sphereM+", 5, min_radius=[1e-3, 1e-2], seed=[0, 1], dropout=[0.5, 0.1], hidden_dim=32,
                 frequency_num=4).eval()
    out = mb(x)
    assert out.shape == (2, 40, 5)
    for m, (r, s, d) in enumerate([(1e-3, 0, 0.5), (1e-2, 1, 0.1)]):
        ms = E.build("sphereM+", 5, min_radius=r, seed=s, dropout=d, hidden_dim=32, frequency_num=4).eval()
        assert torch.allclose(out[m], ms(x), atol=1e-6)


def test_names_aliases_and_rbf_anchors():
    assert E.canonical_name("Sphere2Vec-sphereM+") == "sphereM+"
    assert E.canonical_name("Space2Vec-grid") == "grid" and E.canonical_name("wrap+ffn") == "wrap_ffn"
    assert len(E.available()) == 15
    pts = random_lonlat(300, 8).numpy()
    g = E.position_encoder("rbf", num_anchors=20, anchor_points=pts, seed=[0, 1])
    a = g.anchors.numpy()
    assert a.shape == (2, 20, 2) and not np.allclose(a[0], a[1])
    assert all(any(np.allclose(p, q) for q in pts) for p in a[0])  # anchors are training points
    assert len(np.unique(a[0], axis=0)) == 20  # drawn without replacement
    again = E.position_encoder("rbf", num_anchors=20, anchor_points=pts, seed=1)
    assert np.array_equal(again.anchors.numpy()[0], a[1])  # stored per seed: reloads exactly
    state = g.state_dict()
    assert "anchors" in state and "omega" in E.position_encoder("rff").state_dict()


def test_rbf_great_circle_distance_is_a_function_on_the_sphere():
    # SPEC.md's optional haversine variant: kernel of the great-circle angle, so the code is
    # continuous at the antimeridian and single-valued at the poles (the default is not).
    a = np.array([[179.5, 20.0], [-179.5, 20.0], [0.0, 89.0], [90.0, 89.5]])
    g = G("rbf", num_anchors=4, anchor_points=a, kernel_size=30.0, distance="great_circle", seed=0)
    eps = 1e-9
    f = g(torch.tensor([[180.0 - eps, 20.0], [-180.0 + eps, 20.0]], dtype=torch.float64)).detach()
    assert float((f[0] - f[1]).abs().max()) < 1e-9
    lons = torch.linspace(-180, 170, 8, dtype=torch.float64)
    pole = g(torch.stack([lons, torch.full_like(lons, 90.0)], -1)).detach()
    assert float((pole - pole[0]).abs().max()) < 1e-9
    # hand-computed: the kernel value is exp(-angle^2 / 2 sigma^2) with the angle in degrees
    x = torch.tensor([[10.0, 0.0], [0.0, 50.0], [-100.0, -30.0]], dtype=torch.float64)
    got = g(x).detach().numpy()
    anchors = g.anchors.numpy()[0]
    for i, p in enumerate(x.numpy()):
        for j, q in enumerate(anchors):
            ang = np.degrees(np.arccos(np.clip(lonlat_to_xyz(p) @ lonlat_to_xyz(q), -1, 1)))
            assert got[i, j] == pytest.approx(np.exp(-ang**2 / (2 * 30.0**2)), rel=1e-9, abs=1e-12)
    with pytest.raises(SynthError, match="distance"):
        G("rbf", distance="haversine")


def test_models_run_and_differentiate_on_every_encoder():
    x = random_lonlat(16, 9).float()
    y = torch.randint(0, 3, (16,))
    for name in E.available():
        m = E.build(name, 3, hidden_dim=16, num_filts=8) if E.spec(name).network == "ffn" else E.build(name, 3)
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        grads = [p.grad for p in m.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads), name
    sh_ffn = E.build("spherical_harmonics", 3, network="ffn", legendre_polys=4)
    assert sh_ffn(x).shape == (16, 3)


@pytest.mark.parametrize("call,word", [
    (lambda: G("sphereC")(torch.tensor([[float("nan"), 0.0]])), "non-finite"),
    (lambda: G("grid")(torch.tensor([[0.0, 91.0]])), "latitude"),
    (lambda: G("grid")(torch.tensor([[180.0, 0.0]])), "longitude"),
    (lambda: G("sphereM+", frequency_num=0), "frequency_num"),
    (lambda: G("sphereM+", min_radius=2.0), "min_radius"),
    (lambda: G("theory", min_radius=0.0), "min_radius"),
    (lambda: G("spherical_harmonics", legendre_polys=0), "legendre_polys"),
    (lambda: E.position_encoder("sphereQ"), "unknown encoder"),
    (lambda: E.position_encoder("grid", frequncy_num=3), "unknown hyper-parameter"),
    (lambda: E.position_encoder("grid", frequency_num=[8, 16]), "same for every member"),
    (lambda: E.position_encoder("grid", min_radius=[0.1, 0.2], seed=[0, 1, 2]), "different lengths"),
    (lambda: E.build("sphereC", 3, activation="swish"), "activation"),
    (lambda: E.build("sphereC", 3, dropout=1.5), "dropout"),
    (lambda: G("rbf", kernel_size=-1.0), "kernel_size"),
])
def test_bad_input_gets_one_line_errors(call, word):
    with pytest.raises(SynthError, match=word) as e:
        call()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["rbf", "rff", "tile_ffn"])
def test_saved_models_reload_exactly(name, tmp_path):
    # anchors / frequencies / embeddings are buffers or parameters: a state dict restores them
    x = random_lonlat(30, 11).float()
    m = E.build(name, 4, seed=0, hidden_dim=16).eval()
    torch.save(m.state_dict(), tmp_path / "m.pt")
    other = E.build(name, 4, seed=5, hidden_dim=16).eval()
    assert not torch.allclose(other(x), m(x))
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    assert torch.equal(other(x), m(x))


@pytest.mark.parametrize("distance", ["euclidean", "great_circle"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_rbf_features_are_the_formula_without_subnormals(distance, dtype):
    # rbf skips exp's underflow (slow in float64) and the output dtype's subnormals (slow in every
    # matrix product that reads them): a feature is the plain formula's, except that a subnormal
    # one is 0. Points far from the anchors, and for float32 distances straddling the subnormal
    # range (exponents from -87.3, the smallest normal, to -103.97, where exp rounds to 0).
    sigma = 0.64
    d_edges = sigma * np.sqrt(2 * np.array([87.34, 103.97]))
    anchors = np.array([[0.0, 0.0], [90.0, 45.0], [-120.0, -60.0]])
    g = G("rbf", dtype, num_anchors=3, anchor_points=anchors, kernel_size=sigma, distance=distance, seed=0)
    offsets = np.concatenate([np.linspace(0, 3, 7), np.linspace(d_edges[0] - 0.1, d_edges[1] + 0.1, 61), [20.0, 90.0]])
    x = torch.cat([torch.tensor(np.stack([offsets, np.zeros_like(offsets)], -1)), random_lonlat(200, seed=3)])
    got = g(x).detach()
    a = g.anchors[0]
    if distance == "great_circle":
        d2 = great_circle(x[:, None, :], a[None, :, :], degrees=True) ** 2
    else:
        d2 = ((x * x).sum(-1, keepdim=True) + (a * a).sum(-1)[None, :] - 2.0 * x @ a.T).clamp_min(0.0)
    plain = torch.exp(-d2 / (2.0 * sigma**2)).to(dtype)
    tiny = torch.finfo(dtype).tiny
    assert torch.equal(got, torch.where(plain < tiny, torch.zeros_like(plain), plain))
    assert not ((got > 0) & (got < tiny)).any()
    if dtype == torch.float32:  # the points reach normal, subnormal and zero features of anchor (0, 0)
        near = plain[7:68, int(a.abs().sum(-1).argmin())]
        assert (near >= tiny).any() and ((near > 0) & (near < tiny)).any() and (near == 0).any()
