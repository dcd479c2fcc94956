"""Event time in UTC days: windows follow the event's timestamp, never the wall clock.

>>> (3 * DAY_MS + 5) // DAY_MS  # the UTC day number of an epoch-milliseconds timestamp
3
"""

DAY_MS = 86_400_000
