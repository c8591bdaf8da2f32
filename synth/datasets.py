"""The paper's 20 synthetic vMF datasets (U1–U4, S1.1–S4.4) as named, seeded, versioned recipes.

Layout follows scikit-learn's ``datasets`` generators: a recipe is plain data, ``generate``
turns (recipe, seed) into arrays deterministically, ``save``/``load`` move them through
``.npz`` files checked against a ``manifest.json`` written beside them.

SPEC.md section 3 defines the recipes: C = 50 classes, 100 samples each; κ = r², r ~ U(κ_min,
κ_max) (the "literal" reading, which matches the paper's accuracies; ``kappa_reading="sqrt"`` is
the alternative r ~ U(√κ_min, √κ_max)); centres area-uniform on the sphere (U) or area-uniform
inside N_μ equal-angle latitude bands with C_μ centres each (S); a per-class stratified
train/val/test split, 70/10/20 by default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .errors import SynthError
from .fileio import atomic_write_bytes, folder_lock, npz_bytes
from .params import (
    INTS, LONLAT, NAMES, PATH, TABLE, TEXT, Interval, Kind, Param, checked, flag, instance, integer, optional)
from .sphere import band_edges, lonlat_to_xyz, tilt_matrix, uniform_lonlat, validate_lonlat, xyz_to_lonlat
from .vmf import sample as vmf_sample

ARRAYS = ("train_lonlat", "train_label", "val_lonlat", "val_label", "test_lonlat", "test_label",
          "centers_lonlat", "kappa")
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
# Stored coordinates are rounded to 1e-9 degrees (0.1 mm): NumPy's SIMD transcendental functions
# may differ in the last bit between CPUs, and rounding makes the files bit-identical across
# machines except in the rare case where such a bit straddles a rounding boundary.
DECIMALS = 9
# A recipe's name becomes a file name (<name>_seed<k>.npz): letters, digits and . _ + - only, no
# "..", so that a name can never reach outside the output folder.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
RECIPE_PARAMS = {p.name: p for p in (
    Param("name", str, None, role="recipe", help="letters, digits and . _ + - (at most 64)"),
    Param("centers", str, "uniform", ("uniform", "stratified"), "recipe"),
    Param("n_bands", int, 1, Interval(1, 1000), "recipe", help="N_mu, stratified only"),
    Param("n_classes", int, 50, Interval(2, 100000), "recipe"),
    Param("samples_per_class", int, 100, Interval(1, 1000000), "recipe"),
    Param("kappa_min", float, 1.0, Interval(0, 1000, "right"), "recipe"),
    Param("kappa_max", float, 16.0, Interval(0, 1000, "right"), "recipe",
          help="kappa = r^2 stays within the sampler's range (<= 1e6)"),
    Param("kappa_reading", str, "literal", ("literal", "sqrt"), "recipe"),
    Param("version", int, 1, Interval(1, 1000000), "recipe"),
    Param("tilt", float, 0.0, Interval(-180, 180), "recipe", help="degrees: centres and samples rotated "
          "about the axis through (90°E, 0°); (0°, 0°) moves to (0°, tilt) (synth.sphere.tilt_matrix)"),
    Param("n_train", int, None, Interval(1, 1000000), "recipe", optional=True, help="training points per "
          "class: a seeded, nested subsample of the training split; validation and test are unchanged"),
    Param("stream", str, "", role="recipe", help="the name whose random stream is drawn (default: its own); "
          "an ablation's levels share their base's, so they differ only in the factor"),
    Param("description", str, "", role="recipe"),
)}
_LATER_FIELDS = ("tilt", "n_train", "stream")
MAX_POINTS = 10**7  # a recipe larger than this is a typo, not an experiment


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a synthetic dataset except the seed."""

    name: str
    centers: str = "uniform"  # "uniform" or "stratified"
    n_bands: int = 1  # N_μ, stratified only
    n_classes: int = 50
    samples_per_class: int = 100
    kappa_min: float = 1.0
    kappa_max: float = 16.0
    kappa_reading: str = "literal"  # "literal": r ~ U(κmin, κmax); "sqrt": r ~ U(√κmin, √κmax); κ = r²
    split: tuple = (0.7, 0.1, 0.2)
    version: int = 1
    description: str = ""
    tilt: float = 0.0  # degrees; see RECIPE_PARAMS
    n_train: int | None = None  # training points per class (a subsample of the training split)
    stream: str = ""  # the name whose random stream is drawn ("": this recipe's own name)

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name) or ".." in self.name:
            raise SynthError(f"recipe name {self.name!r} is not valid: use 1-64 letters, digits and . _ + - "
                             "(starting with a letter or digit, no '..'); it becomes a file name")
        for k, param in RECIPE_PARAMS.items():
            object.__setattr__(self, k, param.check(getattr(self, k), f"recipe {self.name}"))
        if self.n_classes * self.samples_per_class > MAX_POINTS:
            raise SynthError(f"recipe {self.name}: {self.n_classes} x {self.samples_per_class} points is more "
                             f"than {MAX_POINTS}")
        if self.centers == "stratified" and (self.n_bands < 1 or self.n_classes % self.n_bands):
            raise SynthError(f"recipe {self.name}: n_classes ({self.n_classes}) must be a multiple of n_bands ({self.n_bands})")
        if not (0 < self.kappa_min <= self.kappa_max) or not np.isfinite(self.kappa_max):
            raise SynthError(f"recipe {self.name}: need 0 < kappa_min <= kappa_max, got {self.kappa_min}, {self.kappa_max}")
        frac = Param("split", float, None, Interval(0, 1), "recipe")
        if not isinstance(self.split, (list, tuple)) or len(self.split) != 3:
            raise SynthError(f"recipe {self.name}: split must be three fractions (train, val, test), got {self.split!r}")
        split = tuple(frac.check(x, f"recipe {self.name}") for x in self.split)
        if abs(sum(split) - 1) > 1e-9:
            raise SynthError(f"recipe {self.name}: split must be three non-negative fractions summing to 1, got {self.split}")
        object.__setattr__(self, "split", split)
        if self.n_train is not None and self.n_train > self._split_cuts()[0]:
            raise SynthError(f"recipe {self.name}: n_train = {self.n_train} is more than the "
                             f"{self._split_cuts()[0]} training points per class of its split")
        if min(self.split_sizes()) < 1:
            raise SynthError(f"recipe {self.name}: split {list(split)} leaves an empty train, val or test split "
                             f"with {self.samples_per_class} samples per class (per class: {self.split_sizes()})")

    @property
    def centers_per_band(self) -> int:
        return self.n_classes // self.n_bands if self.centers == "stratified" else self.n_classes

    def _split_cuts(self) -> tuple[int, int, int]:
        """Per-class (train, val, test) counts of the split before any subsample; rounding goes to train."""
        n = self.samples_per_class
        n_val, n_test = int(round(n * self.split[1])), int(round(n * self.split[2]))
        return n - n_val - n_test, n_val, n_test

    def split_sizes(self) -> tuple[int, int, int]:
        """Per-class (train, val, test) counts as stored (train: ``n_train`` when set)."""
        n_tr, n_val, n_test = self._split_cuts()
        return (n_tr if self.n_train is None else self.n_train), n_val, n_test

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["split"] = list(self.split)
        # fields added after version 1 of the file format appear only when set, so that every recipe
        # written before them keeps its dict, its hash and its results
        for k in _LATER_FIELDS:
            if d[k] == RECIPE_PARAMS[k].default:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SynthError(f"unknown recipe key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "name" not in d:
            raise SynthError("a recipe needs a 'name'")
        return cls(**d)


_REGISTRY: dict[str, Recipe] = {}


def _name_or_recipe(value):
    if isinstance(value, Recipe) or isinstance(value, str) and value.strip():
        return value
    raise TypeError


DATASET = Kind("a dataset name or a Recipe", _name_or_recipe)
SEED = integer(0, 2**32 - 1)


@checked(spec=TABLE, allow_paper_name=flag())
def user_recipe(spec: dict, allow_paper_name: bool = False) -> Recipe:
    """A recipe of the user's (from a TOML [recipe] table). It may not take a paper dataset's name
    unless ``allow_paper_name``: files and results would otherwise pass for the paper's data."""
    recipe = Recipe.from_dict(spec)
    if recipe.name in PAPER_DATASETS and not allow_paper_name:
        raise SynthError(f"recipe name {recipe.name!r} is a paper dataset's name; choose another name "
                         "(or pass --allow-paper-name: results are then kept apart from the paper's by recipe)")
    return recipe


def is_paper_recipe(recipe: Recipe) -> bool:
    return recipe.name in PAPER_DATASETS and _REGISTRY.get(recipe.name) == recipe


def register(recipe: Recipe, overwrite: bool = False) -> Recipe:
    if recipe.name in _REGISTRY and not overwrite:
        raise SynthError(f"dataset {recipe.name!r} is already registered")
    _REGISTRY[recipe.name] = recipe
    return recipe


def available() -> list[str]:
    return list(_REGISTRY)


@checked(name=TEXT)
def get_recipe(name: str) -> Recipe:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SynthError(f"unknown dataset {name!r}; known: {', '.join(_REGISTRY)}") from None


def _register_paper_datasets():
    kmax = (16, 32, 64, 128)
    for j, k in enumerate(kmax, 1):
        register(Recipe(name=f"U{j}", kappa_max=k,
                        description=f"50 centres uniform on the sphere, kappa = r^2, r ~ U(1, {k})"))
    for i, nb in enumerate((5, 10, 25, 50), 1):
        for j, k in enumerate(kmax, 1):
            register(Recipe(name=f"S{i}.{j}", centers="stratified", n_bands=nb, kappa_max=k,
                            description=f"{50 // nb} centres in each of {nb} equal-angle latitude bands, "
                                        f"kappa = r^2, r ~ U(1, {k})"))


_register_paper_datasets()
PAPER_DATASETS = tuple(available())


@dataclass
class Dataset:
    """A generated (or loaded) dataset: arrays named as in the ``.npz`` file, plus provenance."""

    recipe: Recipe
    seed: int
    arrays: dict = field(repr=False)

    @property
    def name(self) -> str:
        return self.recipe.name

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """(lonlat, labels) of ``train``, ``val``, ``test``, or ``all`` three concatenated."""
        if which == "all":
            parts = [self.split(s) for s in SPLITS]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        if which not in SPLITS:
            raise SynthError(f"unknown split {which!r}; use one of {', '.join(SPLITS)} or all")
        return self.arrays[f"{which}_lonlat"], self.arrays[f"{which}_label"]

    @property
    def centers_xyz(self) -> np.ndarray:
        return lonlat_to_xyz(self.arrays["centers_lonlat"])

    @property
    def file_name(self) -> str:
        return file_name(self.name, self.seed)


def file_name(name: str, seed: int) -> str:
    return f"{name}_seed{seed}.npz"


def _rng(recipe: Recipe, seed: int) -> np.random.Generator:
    # PCG64 from a SeedSequence is integer arithmetic: identical streams on every machine.
    name = recipe.stream or recipe.name
    return np.random.default_rng(np.random.SeedSequence([int(seed), recipe.version, zlib.crc32(name.encode())]))


@checked(recipe=instance(Recipe), lonlat=LONLAT)
def original_frame(recipe: Recipe, lonlat) -> np.ndarray:
    """Coordinates of a (tilted) recipe's points in the frame before its tilt (identity for tilt 0)."""
    lonlat = np.asarray(lonlat, dtype=np.float64)
    if recipe.tilt == 0:
        return lonlat
    return xyz_to_lonlat(lonlat_to_xyz(lonlat) @ tilt_matrix(recipe.tilt))  # row vectors: x R^-T = x R


def _centers(recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    if recipe.centers == "uniform":
        return uniform_lonlat(recipe.n_classes, rng)
    edges = band_edges(recipe.n_bands)
    return np.concatenate([uniform_lonlat(recipe.centers_per_band, rng, (lo, hi))
                           for lo, hi in zip(edges[:-1], edges[1:])])


def _kappas(recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    lo, hi = recipe.kappa_min, recipe.kappa_max
    if recipe.kappa_reading == "sqrt":
        lo, hi = np.sqrt(lo), np.sqrt(hi)
    return rng.uniform(lo, hi, size=recipe.n_classes) ** 2


def _stored(lonlat: np.ndarray) -> np.ndarray:
    """Round to DECIMALS; a longitude that rounds up to 180 becomes -180 (the range is [-180, 180))."""
    out = np.round(lonlat, DECIMALS)
    out[..., 0] = np.where(out[..., 0] >= 180, -180.0, out[..., 0])
    return out


@checked(name_or_recipe=DATASET, seed=SEED)
def generate(name_or_recipe, seed: int = 0) -> Dataset:
    """Generate a dataset deterministically from (recipe, seed)."""
    recipe = name_or_recipe if isinstance(name_or_recipe, Recipe) else get_recipe(name_or_recipe)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthError(f"seed must be a non-negative integer, got {seed!r}")
    rng = _rng(recipe, int(seed))
    centers = _stored(_centers(recipe, rng))
    kappa = _kappas(recipe, rng)
    sample_seed = int(rng.integers(0, 2**62))
    mu = lonlat_to_xyz(centers)
    mu /= np.linalg.norm(mu, axis=-1, keepdims=True)
    xyz = vmf_sample(mu, kappa, recipe.samples_per_class, seed=sample_seed)  # (C, n, 3)
    if recipe.tilt != 0:  # a rigid rotation of centres and samples: the vMF law in the tilted frame
        R = tilt_matrix(recipe.tilt)
        xyz = xyz @ R.T
        centers = _stored(xyz_to_lonlat(mu @ R.T))
    points = _stored(xyz_to_lonlat(xyz))
    n_tr, n_va, n_te = recipe._split_cuts()
    order = np.argsort(rng.random(points.shape[:2]), axis=1)  # a per-class permutation
    cuts = {"train": (0, n_tr), "val": (n_tr, n_tr + n_va), "test": (n_tr + n_va, n_tr + n_va + n_te)}
    arrays = {}
    labels = np.arange(recipe.n_classes)
    if recipe.n_train is not None:  # the first n_train of the per-class permutation: nested subsamples
        cuts["train"] = (0, recipe.n_train)
    for split, (a, b) in cuts.items():
        idx = order[:, a:b]
        arrays[f"{split}_lonlat"] = np.take_along_axis(points, idx[..., None], axis=1).reshape(-1, 2)
        arrays[f"{split}_label"] = np.repeat(labels, b - a).astype(np.int64)
    arrays["centers_lonlat"] = centers
    arrays["kappa"] = kappa
    return Dataset(recipe=recipe, seed=int(seed), arrays=arrays)


def _npz_bytes(arrays: dict) -> bytes:
    return npz_bytes({k: arrays[k] for k in ARRAYS})


_MANIFEST_ENTRY = {"name", "seed", "recipe", "sha256"}


def _read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        return {"package": "sphere-synth", "datasets": {}}
    try:
        m = json.loads(path.read_text())
        assert isinstance(m, dict) and isinstance(m.get("datasets"), dict)
        for entry in m["datasets"].values():  # every entry complete, so later reads cannot fail half-way
            assert isinstance(entry, dict) and _MANIFEST_ENTRY <= set(entry)
            assert isinstance(entry["recipe"], dict) and isinstance(entry["sha256"], str)
            assert isinstance(entry["seed"], int) and not isinstance(entry["seed"], bool) and entry["seed"] >= 0
        return m
    except (json.JSONDecodeError, AssertionError, UnicodeDecodeError):
        raise SynthError(f"{path} is not a valid sphere-synth manifest") from None


@checked(ds=instance(Dataset), folder=PATH)
def save(ds: Dataset, folder) -> Path:
    """Write ``<name>_seed<seed>.npz`` and record it (parameters, SHA-256) in ``manifest.json``."""
    folder = Path(folder)
    data = _npz_bytes(ds.arrays)
    path = folder / ds.file_name
    atomic_write_bytes(path, data)
    with folder_lock(folder):  # read-modify-write: two generators in one folder must not drop entries
        _record(ds, data, folder)
    return path


def _record(ds: Dataset, data: bytes, folder: Path) -> None:
    manifest = _read_manifest(folder)
    manifest["package_version"] = __version__
    n_tr, n_va, n_te = ds.recipe.split_sizes()
    manifest["datasets"][ds.file_name] = {
        "name": ds.name,
        "seed": ds.seed,
        "recipe": ds.recipe.to_dict(),
        "recipe_version": ds.recipe.version,
        "package_version": __version__,
        "sha256": hashlib.sha256(data).hexdigest(),
        "split_sizes": {"train": n_tr * ds.recipe.n_classes, "val": n_va * ds.recipe.n_classes,
                        "test": n_te * ds.recipe.n_classes},
        "centers_lonlat": ds["centers_lonlat"].tolist(),
        "kappa": ds["kappa"].tolist(),
    }
    atomic_write_bytes(folder / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())


@checked(path=PATH, verify=flag())
def load(path, verify: bool = True) -> Dataset:
    """Read a dataset file, checking it against the manifest beside it (SHA-256, shapes, ranges)."""
    path = Path(path)
    if not path.is_file():
        raise SynthError(f"no such dataset file: {path}")
    data = path.read_bytes()
    manifest = _read_manifest(path.parent)
    entry = manifest["datasets"].get(path.name)
    if entry is None:
        if verify:
            raise SynthError(f"{path.name} is not listed in {path.parent / MANIFEST}; cannot verify it")
        recipe, seed = None, -1
    else:
        if verify and hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise SynthError(f"{path} is corrupt or was modified: its SHA-256 does not match {MANIFEST}")
        recipe, seed = Recipe.from_dict(entry["recipe"]), int(entry["seed"])
        if recipe.name != entry["name"] or path.name != file_name(recipe.name, seed):
            raise SynthError(f"{path}: its manifest entry names {file_name(recipe.name, seed)}")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/np raise many types for a damaged file
        raise SynthError(f"{path} is not a readable .npz file ({type(e).__name__})") from None
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise SynthError(f"{path} lacks array(s) {', '.join(missing)}")
    if recipe is None:
        n_classes = int(len(arrays["kappa"]))
        recipe = Recipe(name=path.stem, n_classes=n_classes,
                        samples_per_class=sum(len(arrays[f"{s}_label"]) for s in SPLITS) // n_classes)
    _check_arrays(arrays, recipe, path)
    return Dataset(recipe=recipe, seed=seed, arrays=arrays)


def _check_arrays(arrays: dict, recipe: Recipe, path: Path) -> None:
    C = recipe.n_classes
    if arrays["centers_lonlat"].shape != (C, 2) or arrays["kappa"].shape != (C,):
        raise SynthError(f"{path}: centres/kappa do not match the recipe's {C} classes")
    validate_lonlat(arrays["centers_lonlat"], name=f"{path.name} centers_lonlat")
    kappa = arrays["kappa"]
    if kappa.dtype.kind != "f" or not np.all(np.isfinite(kappa)) or np.any(kappa <= 0):
        raise SynthError(f"{path}: kappa must be finite and > 0 for every class")
    for s in SPLITS:
        ll, lab = arrays[f"{s}_lonlat"], arrays[f"{s}_label"]
        if ll.ndim != 2 or ll.shape[1] != 2 or lab.shape != (ll.shape[0],):
            raise SynthError(f"{path}: {s}_lonlat/{s}_label have mismatched shapes {ll.shape} and {lab.shape}")
        validate_lonlat(ll, name=f"{path.name} {s}_lonlat")
        if lab.dtype.kind not in "iu":
            raise SynthError(f"{path}: {s}_label must hold integers, found {lab.dtype}")
        if lab.size and (lab.min() < 0 or lab.max() >= C):
            raise SynthError(f"{path}: {s}_label has labels outside 0..{C - 1}")


def check_follows_recipe(ds: Dataset, path) -> None:
    """Regenerate (recipe, seed) and compare: a file whose arrays were edited and re-hashed, or whose
    manifest names another recipe, is refused. Coordinates are compared to 1e-6 degrees, since a
    stored value may land on the other side of a rounding step on another CPU (see DECIMALS)."""
    if ds.seed < 0:
        raise SynthError(f"{path} is not listed in a manifest; cannot check it against a recipe")
    fresh = generate(ds.recipe, ds.seed)
    for k in ARRAYS:
        a, b = ds[k], fresh[k]
        same = a.shape == b.shape and (np.array_equal(a, b) if a.dtype.kind in "iu" else
                                       np.allclose(a, b, rtol=0, atol=1e-6))
        if not same:
            raise SynthError(f"{path}: array {k} does not follow its recipe {ds.name} (seed {ds.seed}); "
                             "the file was edited or the manifest names another recipe")


@checked(names=NAMES, seeds=INTS, folder=optional(PATH))
def load_many(names, seeds, folder=None) -> dict:
    """{(name, seed): Dataset} for every pair, each verified before anything is trained.

    From ``folder``: checksum, arrays and recipe of every file (a paper name must hold the paper's
    recipe is the one in its manifest entry, and results record it); without a folder: generated."""
    out = {}
    for name in names:
        for seed in seeds:
            if folder is None:
                out[(name, seed)] = generate(name, seed)
                continue
            path = Path(folder) / file_name(name, seed)
            if not path.exists():
                raise SynthError(f"{path} not found; run python -m synth generate first")
            ds = load(path)
            check_follows_recipe(ds, path)
            out[(name, seed)] = ds
    return out


def parse_names(text: str, folder=None) -> list[str]:
    """'U1,S2.3' or 'all' (the 20 paper datasets) -> names. With a data folder, names of user
    recipes listed in its manifest are valid too."""
    if text == "all":
        return list(PAPER_DATASETS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise SynthError(f"no dataset named in {text!r}")
    known = set(_REGISTRY)
    if folder is not None and (Path(folder) / MANIFEST).exists():
        known |= {e.get("name") for e in _read_manifest(Path(folder))["datasets"].values()}
    for n in names:
        if n not in known:
            raise SynthError(f"unknown dataset {n!r}; known: {', '.join(_REGISTRY)}"
                             + (f" and the user recipes in {folder}" if folder is not None else ""))
    return names


def listed_files(folder) -> list[str]:
    """The dataset files a folder's manifest lists, sorted; no manifest, or an empty one, is an error."""
    manifest = Path(folder) / MANIFEST
    files = sorted(_read_manifest(Path(folder))["datasets"]) if manifest.is_file() else None
    if not files:
        raise SynthError(f"{manifest} lists no datasets" if files is not None else
                         f"{folder} has no {MANIFEST}: not a dataset folder (python -m synth generate writes one)")
    return files


def verify_folder(folder) -> list[str]:
    """Check every file listed in the manifest; return the list of problems (empty if all good)."""
    problems = []
    for path in (Path(folder) / f for f in listed_files(folder)):
        try:
            check_follows_recipe(load(path), path)
        except SynthError as e:
            problems.append(str(e))
    return problems


@checked(name=TEXT)
def describe(name: str) -> str:
    r = get_recipe(name)
    n_tr, n_va, n_te = r.split_sizes()
    lines = [f"{r.name}: {r.description}".rstrip(": "),
             f"  classes {r.n_classes} x {r.samples_per_class} samples = {r.n_classes * r.samples_per_class} points",
             f"  centres {r.centers}" + (f", {r.n_bands} equal-angle bands x {r.centers_per_band}" if r.centers == "stratified" else ""),
             f"  kappa = r^2, r ~ U({r.kappa_min:g}, {r.kappa_max:g}) [{r.kappa_reading} reading]"
             if r.kappa_reading == "literal" else
             f"  kappa = r^2, r ~ U(sqrt({r.kappa_min:g}), sqrt({r.kappa_max:g})) [sqrt reading]",
             f"  split per class train/val/test = {n_tr}/{n_va}/{n_te}",
             f"  recipe version {r.version}"]
    return "\n".join(lines)
