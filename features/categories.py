"""The category mix: which kinds of product a user looks at and buys, in a fixed number of hashed buckets.

What a customer shops for says how they shop: grocery and beauty buyers come back for more at a steady pace,
electronics and toy buyers buy now and then and go quiet for months. The models see that through the share of the
user's category-tagged activity (page views with a category, cart adds and removes, purchased items) in each of
:data:`BUCKETS` buckets. A category's bucket is its MurmurHash3 (scikit-learn's ``murmurhash3_32``, the hash of
its ``FeatureHasher``) modulo :data:`BUCKETS`: no vocabulary to configure or keep in step between the stream and
training, and a fixed feature vector whatever a shop calls its categories. Different categories may share a
bucket; with a few dozen top-level categories, few do (send the top-level category, not the leaf).

>>> [bucket(c) for c in ("books", "electronics", "grocery")]
[10, 3, 1]
>>> len({bucket(c) for c in ("books", "electronics", "home", "fashion", "toys", "grocery", "beauty", "sports")})
8
"""

from __future__ import annotations

from functools import lru_cache

from sklearn.utils import murmurhash3_32

BUCKETS = 16


@lru_cache(maxsize=4096)
def bucket(category: str) -> int:
    """The bucket (0 .. BUCKETS - 1) of a category name."""
    return int(murmurhash3_32(category, positive=True)) % BUCKETS
