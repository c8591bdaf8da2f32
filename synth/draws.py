"""Many dataset draws, loaded or generated one at a time."""

from __future__ import annotations

from pathlib import Path

from .datasets import Dataset, Recipe, check_follows_recipe, file_name, generate, get_recipe, load
from .errors import SynthError
from .params import INTS, NAMES, PATH, checked, optional


class Draws:
    """{(name, seed): Dataset}, loaded or generated when first asked for, so that many draws never
    sit in memory at once (``--data-seeds 0-99999`` generates one draw at a time).

    ``verify()`` checks every file before any work (checksum, arrays, recipe, one recipe per name)
    without keeping them; ``recipe(name)`` is the recipe every draw of ``name`` follows."""

    CACHE = 8  # draws kept in memory: a study works draw by draw

    @checked(names=NAMES, seeds=INTS, folder=optional(PATH))
    def __init__(self, names, seeds, folder=None):
        self.names, self.seeds = list(names), list(seeds)
        self._seed_set = set(self.seeds)
        self.folder = None if folder is None else Path(folder)
        self._cache: dict = {}
        self._recipes: dict = {}

    def __contains__(self, key) -> bool:
        return key[0] in self.names and key[1] in self._seed_set

    def _load(self, name: str, seed: int) -> Dataset:
        if self.folder is None:
            return generate(name, seed)
        path = self.folder / file_name(name, seed)
        if not path.exists():
            raise SynthError(f"{path} not found; run python -m synth generate first")
        ds = load(path)
        check_follows_recipe(ds, path)
        return ds

    def __getitem__(self, key) -> Dataset:
        if key not in self:
            raise KeyError(key)
        if key not in self._cache:
            if len(self._cache) >= self.CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self._load(*key)
        return self._cache[key]

    def recipe(self, name: str) -> Recipe:
        if name not in self._recipes:
            self._recipes[name] = self[(name, self.seeds[0])].recipe if self.folder is not None else get_recipe(name)
        return self._recipes[name]

    def verify(self) -> None:
        """Every file, before any work: verified, following its recipe, one recipe per name."""
        if self.folder is None:
            for n in self.names:
                self.recipe(n)
            return
        for n in self.names:
            for s in self.seeds:
                ds = self._load(n, s)
                if ds.recipe.to_dict() != self.recipe(n).to_dict():
                    raise SynthError(f"dataset {n}: seeds {self.seeds[0]} and {s} follow different recipes in "
                                     f"{self.folder}")
