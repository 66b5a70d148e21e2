"""Value checks shared by the training config and the optimizers: each failure is a
ConfigError whose message is one line naming the key, the value and what is allowed."""

import math
from dataclasses import dataclass


class ConfigError(ValueError):
    """A config value outside its allowed range; the message is one line naming it."""


@dataclass(frozen=True)
class Range:
    """Allowed numbers: lo <= x <= hi (open ends where asked); integer-only if `integer`."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        lo = f"{'>' if self.lo_open else '>='} {self.lo:g}" if self.lo is not None else ""
        hi = f"{'<' if self.hi_open else '<='} {self.hi:g}" if self.hi is not None else ""
        return " and ".join(t for t in (lo, hi) if t)

    def check(self, key: str, value, hi_name: str | None = None) -> None:
        """ConfigError unless `value` is allowed; `hi_name` says what the upper bound is."""
        bound = self.describe() + (f" ({hi_name})" if hi_name else "")
        if self.integer:
            if not isinstance(value, int) or isinstance(value, bool) or not self._inside(value):
                raise ConfigError(f"{key}={value!r}: must be an integer {bound}")
            return
        finite = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not finite or not math.isfinite(value):
            raise ConfigError(f"{key}={value!r}: must be a finite number {self.describe()}".strip())
        if not self._inside(value):
            raise ConfigError(f"{key}={value!r}: must be {self.describe()}")

    def _inside(self, v):
        lo_ok = self.lo is None or v > self.lo or (v == self.lo and not self.lo_open)
        hi_ok = self.hi is None or v < self.hi or (v == self.hi and not self.hi_open)
        return lo_ok and hi_ok


def choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}: must be one of {', '.join(sorted(allowed))}")
