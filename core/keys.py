"""Every Redis key churnstream uses, built here and nowhere else (``tests/unit/test_redis_keys.py`` checks it).

The strings are stored data: changing one orphans what a running deployment has written. All start with
``cs:``. A part in ``{...}`` is the Redis Cluster hash tag: only it is hashed, so keys with the same tag share a
slot and one Lua script or transaction may touch them together.

========================================  ========  ====================  ==========================  =================
key (built by)                            type      written by            read by                     Cluster slot
========================================  ========  ====================  ==========================  =================
cs:u:{<user>} (state_key)                 string    worker: state store   worker, API: state store    the user's (tag)
cs:s:{<user>} (score_key)                 hash      worker: state store   API: state store            the user's (tag)
cs:p:{<user>} (pending_key)               string    worker: learner       worker: learner             the user's (tag)
cs:rec:{<user>} (recs_key)                string    recommender job       API: recommendations        the user's (tag)
cs:rb:{<user>} (bought_key)               set       API: feedback         API: recommendations        the user's (tag)
cs:imp:{<user>} (imported_key)            set       CLI: import           CLI: import                 the user's (tag)
cs:exp:<partition> (expiry_key)           zset      worker: learner       worker: learner             untagged (a)
cs:lab:<partition> (log_key)              stream    worker: learner       worker: learner on restart  untagged (a)
cs:labels:<task> (counts_key)             hash      worker: learner       tests: exact counts         untagged (a)
cs:labels:<task>:digest (digest_key)      bitfield  worker: learner       tests: learned = resolved   untagged (a)
cs:labels:watermark (WATERMARK_KEY)       zset      worker: learner       worker: learner on restart  untagged (a)
cs:online:<task>:<kind> (checkpoint_key)  string    worker: learner       worker on restart, API      untagged (a)
cs:due:<partition> (due_key)              zset      worker: rescorer      worker: rescorer            untagged
cs:wm (WATERMARKS)                        zset      worker: rescorer      worker on assignment        untagged
cs:rescoring:<partition> (rescoring_key)  set       worker: rescorer      worker: rescorer            untagged
cs:apikeys (API_KEYS)                     hash      CLI: keys, demo       API: key check              untagged
cs:impjob:<job> (import_job_key)          string    API: import jobs      API: import jobs            untagged
cs:drift:thresholds (DRIFT_THRESHOLDS)    hash      API: admin            worker: drift watch         untagged
cs:drift:done (DRIFT_DONE)                hash      worker: drift watch   worker: drift watch         untagged
cs:drift:lock (DRIFT_LOCK)                string    worker: drift watch   worker: drift watch         untagged
cs:drift:sending (DRIFT_SENDING)          hash      worker: drift watch   worker: drift watch         untagged
cs:retrain:last (RETRAIN_LAST)            string    worker: retraining    worker: retraining          untagged
cs:retrain:asked (RETRAIN_ASKED)          string    worker: drift alerts  worker: retraining          untagged
cs:rfm (RFM_BOUNDARIES)                   string    worker: RFM cut       worker: segments            untagged
cs:rec:settings (RECOMMEND_SETTINGS)      hash      API: admin            API: recommendations        untagged
cs:dash:<sha256> (session_key)            string    API: dashboard login  API: dashboard              untagged
cs:dlq:{<topic>} (ledger_key)             hash      worker: dead letters  worker: dead letters        the topic's (tag)
cs:ch:{<topic>} (ledger_key)              hash      worker: ClickHouse    worker: ClickHouse          the topic's (tag)
========================================  ========  ====================  ==========================  =================

(a) The online learner's transactions (``MULTI``/``EXEC``) span several of these keys and many users' ``cs:p:``
keys, so on Redis Cluster they would fail with ``CROSSSLOT``: online learning needs a single Redis node. The feature
path (``cs:u:``, ``cs:s:``: one Lua script per user) and the ledgers touch one slot per command, as a Cluster needs.

Field layouts: ``cs:s:`` fields are ``<task>:<model kind>`` (JSON score records); ``cs:labels:<task>`` fields
are ``taken`` and ``resolved``; ``cs:labels:watermark`` has one member, ``max``; ``cs:due:<partition>`` scores
each user of the partition by the next day end to score them at; ``cs:wm`` scores each partition (member) by the
latest event time applied from it; ``cs:drift:thresholds`` fields are ``psi_warn``, ``psi_alert`` and
``adwin_delta``; ``cs:drift:done`` maps a champion (``task/model@version``) to the last day its drift was computed;
``cs:drift:lock`` (with a TTL) names the worker running the drift job; ``cs:drift:sending`` maps a champion to
``<day>|<unix ms>`` while that day's alerts are being sent; ``cs:rescoring:<partition>`` holds the
users whose time rows may be written but their states not yet; ledger fields are partitions with values
``<offset>:<unix ms>``; ``cs:apikeys`` fields are key ids (see :mod:`serving.keys`).

>>> state_key("u1"), score_key("u1"), pending_key("u1")
('cs:u:{u1}', 'cs:s:{u1}', 'cs:p:{u1}')
>>> expiry_key(3), log_key(3), counts_key("churn"), digest_key("churn"), WATERMARK_KEY
('cs:exp:3', 'cs:lab:3', 'cs:labels:churn', 'cs:labels:churn:digest', 'cs:labels:watermark')
>>> checkpoint_key("churn", "logreg"), API_KEYS, due_key(3), WATERMARKS, rescoring_key(3)
('cs:online:churn:logreg', 'cs:apikeys', 'cs:due:3', 'cs:wm', 'cs:rescoring:3')
>>> ledger_key(DLQ_LEDGER, "page_views"), ledger_key(CLICKHOUSE_LEDGER, "page_views")
('cs:dlq:{page_views}', 'cs:ch:{page_views}')

A per-user key with a glob in place of (the end of) the user id is a ``SCAN``/``KEYS`` pattern for those users;
:func:`user_of` reads the user back from a key:

>>> state_key("bench-*")
'cs:u:{bench-*}'
>>> user_of(b"cs:p:{u:42}")
'u:42'
"""

from __future__ import annotations

PREFIX = "cs:"  # every key starts with it


# --- per user: all in the user's hash slot -------------------------------------------------------------------


def state_key(user_id: str) -> str:
    """The user's encoded state (:mod:`features.state`): rolling day buckets and replay guards."""
    return f"cs:u:{{{user_id}}}"


def score_key(user_id: str) -> str:
    """Hash of the user's latest scores, field ``<task>:<model kind>``; written with the state, same slot."""
    return f"cs:s:{{{user_id}}}"


def pending_key(user_id: str) -> str:
    """The user's pending label snapshots (at most one per task), waiting for their label."""
    return f"cs:p:{{{user_id}}}"


def recs_key(user_id: str) -> str:
    """The user's collaborative-filtering candidates from the daily recommender job (JSON, with a TTL)."""
    return f"cs:rec:{{{user_id}}}"


def bought_key(user_id: str) -> str:
    """Set of the items the user bought from a recommendation since the job (feedback ``bought``)."""
    return f"cs:rb:{{{user_id}}}"


def imported_key(user_id: str) -> str:
    """Set of hashes (8 bytes) of the user's event ids that ``churnstream import`` has sent (the import ledger)."""
    return f"cs:imp:{{{user_id}}}"


def user_of(key: str | bytes) -> str:
    """The user id in a per-user key (its hash tag): the inverse of :func:`state_key` and its siblings."""
    text = key.decode() if isinstance(key, bytes) else key
    return text[text.index("{") + 1 : text.rindex("}")]


# --- delayed labels and online learning (the worker's learner) ------------------------------------------------


def expiry_key(partition: int) -> str:
    """Sorted set of the partition's pending snapshots, member ``<task>|<user>``, scored by expiry time."""
    return f"cs:exp:{partition}"


def log_key(partition: int) -> str:
    """Stream of the partition's resolved labels not yet in a model checkpoint."""
    return f"cs:lab:{partition}"


def counts_key(task: str) -> str:
    """Hash counting the task's snapshots ``taken`` and labels ``resolved``."""
    return f"cs:labels:{task}"


def digest_key(task: str) -> str:
    """The task's resolved labels' hashes summed modulo 2**63 (a ``u63`` bitfield)."""
    return f"cs:labels:{task}:digest"


WATERMARK_KEY = "cs:labels:watermark"  # sorted set: member ``max`` scores the latest event time the learner saw


def checkpoint_key(task: str, kind: str) -> str:
    """The signed checkpoint of the task's online model of ``kind`` (e.g. ``logreg``)."""
    return f"cs:online:{task}:{kind}"


def import_job_key(job_id: str) -> str:
    """An import job's progress (JSON, with a TTL), for ``GET /v1/imports/{id}`` on any API process."""
    return f"cs:impjob:{job_id}"


# --- API keys ---------------------------------------------------------------------------------------------------


def due_key(partition: int) -> str:
    """Sorted set: the partition's users scored by the next day end (epoch ms) to score them at by time."""
    return f"cs:due:{partition}"


WATERMARKS = "cs:wm"  # sorted set: partition -> the latest event time applied from it (its event-time clock)


def rescoring_key(partition: int) -> str:
    """Set: the partition's users whose time rows may be written but their states not yet (a step in flight)."""
    return f"cs:rescoring:{partition}"


API_KEYS = "cs:apikeys"  # hash: key id -> JSON record with the secret's SHA-256, name and scopes
DRIFT_THRESHOLDS = "cs:drift:thresholds"  # hash: the drift alert thresholds set through the API (streams.drift_watch)
DRIFT_DONE = "cs:drift:done"  # hash: champion -> the last day (ISO) the daily drift job finished for it
DRIFT_SENDING = "cs:drift:sending"  # hash: champion -> "<day>|<unix ms>" while that day's alerts are sent
RETRAIN_LAST = "cs:retrain:last"  # string: when (unix ms) the worker last started a scheduled retraining
RETRAIN_ASKED = "cs:retrain:asked"  # string: why a retraining is asked for (a drift alert), until one starts
DRIFT_LOCK = "cs:drift:lock"  # string with a TTL: the worker running the daily drift job now
RFM_BOUNDARIES = "cs:rfm"  # string: the RFM segments' current quintile boundaries, JSON (features.rfm.Boundaries)
RECOMMEND_SETTINGS = "cs:rec:settings"  # hash: the recommendations' admin settings (alpha, min_score, popular_share)


def session_key(digest: str) -> str:
    """String with a TTL: a dashboard login session (by the SHA-256 of its cookie) -> the API key id it was opened
    with."""
    return f"cs:dash:{digest}"


# --- per source partition marks (streams.ledger) ----------------------------------------------------------------

DLQ_LEDGER = "cs:dlq"  # how far each source partition's dead letters were delivered
CLICKHOUSE_LEDGER = "cs:ch"  # how far rows of each source partition may have been written to ClickHouse


def ledger_key(ledger: str, topic: str) -> str:
    """Hash of ``ledger``'s marks for one source topic (field = partition); the topic is the hash tag."""
    return f"{ledger}:{{{topic}}}"
