"""Priority categories: bounded memory under any stream (hypothesis), recency weighting, and replay-stable bytes."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contracts import Event
from core.days import DAY_MS
from features.interest import KEPT, NAME_BYTES, note, top
from features.state import UserState, apply, encode_state

T0 = 20_000 * DAY_MS
BOUND = 200  # bytes of a user's state that the priority categories may add (issue 17)

kinds = st.sampled_from(["page_view", "cart", "purchase"])
names = st.text(min_size=1, max_size=80)  # any Unicode, far longer than a category should be
events = st.lists(st.tuples(kinds, st.lists(names, min_size=1, max_size=4), st.integers(0, 400 * DAY_MS)), max_size=300)


def fold(stream: list[tuple[str, list[str], int]]) -> UserState:
    s = UserState()
    for i, (kind, cats, offset) in enumerate(stream):
        ev = Event(kind, f"e{i}", "u", T0 + offset, categories=tuple(cats))  # type: ignore[arg-type]
        apply(s, ev)
    return s


def interest_bytes(s: UserState) -> int:
    """What the two interest fields add to the encoded state."""
    bare = msgspec.structs.replace(s, interest={}, interest_ms=0)
    return len(encode_state(s)) - len(encode_state(bare)) + 2  # + the 1-byte empty map and 0 they replace


@settings(max_examples=300, deadline=None)
@given(events)
def test_memory_is_bounded_whatever_the_stream(stream: list[tuple[str, list[str], int]]) -> None:
    s = fold(stream)
    assert len(s.interest) <= KEPT
    assert all(len(name.encode()) <= NAME_BYTES for name in s.interest)
    assert interest_bytes(s) <= BOUND


def test_the_bound_holds_at_its_worst() -> None:
    """Five categories of the longest name (every float takes 9 bytes) and the largest clock."""
    s = UserState(interest={f"{i}" * NAME_BYTES: 1e300 for i in range(KEPT)}, interest_ms=2**62)
    assert interest_bytes(s) <= BOUND


def test_recent_interest_outranks_old_interest() -> None:
    """Ten views of books 90 days ago weigh 10 / 8 = 1.25 now: one recent cart add (3) outranks them."""
    interest: dict[str, float] = {}
    ref = 0
    for i in range(10):
        ref = note(interest, ref, "books", "page_view", T0 + i, half_life_days=30)
    ref = note(interest, ref, "toys", "cart", T0 + 90 * DAY_MS, half_life_days=30)
    assert [name for name, _ in top(interest, ref, ref, k=2, half_life_days=30)] == ["toys", "books"]
    assert top(interest, ref, ref, 2, 30)[1][1] == 1.25


def test_a_late_event_adds_its_decayed_weight() -> None:
    interest: dict[str, float] = {}
    ref = note(interest, 0, "books", "page_view", T0 + 30 * DAY_MS, half_life_days=30)
    ref = note(interest, ref, "books", "purchase", T0, half_life_days=30)  # 30 days older than the clock
    assert ref == T0 + 30 * DAY_MS and interest == {"books": 1 + 2.5}


def test_a_new_category_replaces_the_weakest_only_if_it_weighs_more() -> None:
    interest = {f"c{i}": float(i + 2) for i in range(KEPT)}  # c0 is the weakest, at 2 views
    ref = note(interest, 1, "new-view", "page_view", 1, half_life_days=30)
    assert "new-view" not in interest and len(interest) == KEPT
    ref = note(interest, ref, "new-buy", "purchase", 1, half_life_days=30)
    assert "new-buy" in interest and "c0" not in interest and len(interest) == KEPT


def test_the_order_of_arrival_changes_only_the_last_bits() -> None:
    stream = [("page_view", ["books"], 5 * DAY_MS), ("purchase", ["books"], 1 * DAY_MS), ("cart", ["toys"], 0)]
    forth, back = fold(stream), fold(stream[::-1])
    assert forth.interest.keys() == back.interest.keys() and forth.interest_ms == back.interest_ms
    assert all(abs(forth.interest[k] - back.interest[k]) < 1e-12 for k in forth.interest)


@settings(max_examples=50, deadline=None)
@given(events)
def test_the_same_stream_gives_the_same_bytes(stream: list[tuple[str, list[str], int]]) -> None:
    assert encode_state(fold(stream)) == encode_state(fold(stream))
