"""The generated shop's catalogue: products in categories, grouped in product lines, with tastes that cut across
categories, so that co-views and co-purchases carry signal for recommendations (issue 17).

Each category has :data:`LINES` product lines (a style, a range) of :data:`PER_LINE` products, and popularity within
a line falls with rank (Zipf). Each user has a taste: one line index, the same in every category (a customer who
likes line 2 of fashion likes line 2 of home too), so a user's products co-occur with other users' of the same taste,
across categories. A product page is in the user's taste with :data:`TASTE_SHARE`, else in any line.

The generator draws one integer per product page, as it always did; :func:`pick` maps it to a product, so the rest of
the generated history (and every figure computed on it) does not change with the catalogue.

>>> pick("user-1", "books", 1234), pick("user-1", "books", 1234) == pick("user-1", "books", 1234)
('p36', True)
>>> product("p36")
Product(product_id='p36', category='books', line=3, rank=0)
>>> len(CATALOGUE), len({p.category for p in CATALOGUE})
(384, 8)
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from sklearn.utils import murmurhash3_32

CATEGORIES = ("books", "electronics", "home", "fashion", "toys", "grocery", "beauty", "sports")
LINES = 4  # product lines per category
PER_LINE = 12  # products per line
TASTE_SHARE = 0.7  # chance that a product page is in the user's taste line
ZIPF = 1.0  # popularity within a line falls as 1 / (rank + 1) ** ZIPF
DRAWS = 5000  # the generator's draw per product page is uniform on [0, DRAWS)


class Product(NamedTuple):
    product_id: str
    category: str
    line: int
    rank: int


def _ranks(slots: int) -> tuple[int, ...]:
    """``slots`` ranks whose frequencies follow the Zipf weights: a uniform slot gives a Zipf-distributed rank."""
    weights = [1 / (r + 1) ** ZIPF for r in range(PER_LINE)]
    total = sum(weights)
    out: list[int] = []
    for r, w in enumerate(weights):
        out += [r] * max(1, round(slots * w / total))
    return tuple(out)


_RANKS = _ranks(DRAWS // 10 // LINES)
CATALOGUE = tuple(
    Product(f"p{(c * LINES + line) * PER_LINE + rank}", name, line, rank)
    for c, name in enumerate(CATEGORIES)
    for line in range(LINES)
    for rank in range(PER_LINE)
)
_BY_ID = {p.product_id: p for p in CATALOGUE}


@lru_cache(maxsize=65536)
def taste(user_id: str) -> int:
    """The user's taste: a line index, stable for the user id."""
    return int(murmurhash3_32(user_id, seed=17, positive=True)) % LINES


def pick(user_id: str, category: str, draw: int) -> str:
    """The product of a product page in ``category``, from the generator's uniform ``draw`` in [0, DRAWS)."""
    w = draw // 10
    line = taste(user_id) if draw % 10 < TASTE_SHARE * 10 else w % LINES
    rank = _RANKS[(w // LINES) % len(_RANKS)]
    return f"p{(CATEGORIES.index(category) * LINES + line) * PER_LINE + rank}"


def product(product_id: str) -> Product:
    return _BY_ID[product_id]
