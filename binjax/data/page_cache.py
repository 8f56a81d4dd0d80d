"""Random-access page sources that decode each page once and keep it in memory.

Pages are read many times per epoch (one random patch at a time), so decoding them once pays.
Each grain worker process gets its own empty cache: the cache and lock are not pickled.
"""

from __future__ import annotations

import threading

import numpy as np


class CachedPages:
    """Base of the page sources: bounds checking, an optional in-memory cache, pickling.

    Subclasses set `self.cache` (bool), call `_init_cache()` and implement `__len__` and
    `_decode(index) -> {'image': ..., 'mask': ...}`. Attributes named in `_RESET_WHEN_PICKLED`
    (open readers, say) are set to None in the copy sent to a worker.
    """

    _RESET_WHEN_PICKLED: tuple[str, ...] = ()
    cache: bool

    def _init_cache(self) -> None:
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    def _decode(self, index: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"{type(self).__name__} index {index} out of range [0, {len(self)})")
        cached = self._cache.get(index) if self.cache else None
        if cached is not None:
            return cached
        example = self._decode(index)
        if self.cache:  # shared between callers: read-only, so nobody edits another's page
            for array in example.values():
                array.flags.writeable = False
            with self._lock:  # two reader threads may decode the same page once each; keep one
                example = self._cache.setdefault(index, example)
        return example

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update({name: None for name in self._RESET_WHEN_PICKLED}, _cache={})
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
