"""The hash chain over audit events: how an event's hash is computed and how the chain is verified."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


def event_hash(*, sequence: int, event_time: datetime, event_type: str, actor_id: int | None, actor_name: str,
               subject_type: str, subject_id: str, data: Any, prev_hash: str) -> str:
    """SHA-256 over the event's content and the previous hash, in a canonical form."""
    canonical = json.dumps({
        "sequence": sequence,
        "event_time": event_time.astimezone(UTC).isoformat(timespec="microseconds"),
        "event_type": event_type,
        "actor_id": actor_id,
        "actor_name": actor_name,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "data": data,
        "prev_hash": prev_hash,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    event_id: int | None
    sequence: int
    problem: str

    def __str__(self) -> str:
        where = f"event id {self.event_id}" if self.event_id is not None else "no event"
        return f"sequence {self.sequence} ({where}): {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    events: int
    head_sequence: int
    head_hash: str
    problems: tuple[ChainProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_rows(rows: Iterator[tuple[Any, ...]], *, head_sequence: int | None,
                head_hash: str | None) -> ChainReport:
    """Walk rows (id, sequence, event_time, event_type, actor_id, actor_name, subject_type, subject_id,
    data, prev_hash, hash) in sequence order; name every altered, removed or inserted event."""
    problems: list[ChainProblem] = []
    expected_sequence = 1
    previous_hash = GENESIS_HASH
    count = 0
    last_sequence, last_hash = 0, GENESIS_HASH
    for row in rows:
        (event_id, sequence, event_time, event_type, actor_id, actor_name, subject_type, subject_id, data,
         prev_hash, stored_hash) = row
        count += 1
        if sequence > expected_sequence:
            problems.append(ChainProblem(None, expected_sequence,
                                         f"events {expected_sequence} to {sequence - 1} are missing (removed)"))
        elif sequence < expected_sequence:
            problems.append(ChainProblem(event_id, sequence, "sequence repeats: an event was inserted"))
        if prev_hash != previous_hash:
            problems.append(ChainProblem(event_id, sequence,
                                         "does not chain to the previous event (an event was removed or inserted)"))
        recomputed = event_hash(sequence=sequence, event_time=event_time, event_type=event_type, actor_id=actor_id,
                                actor_name=actor_name, subject_type=subject_type, subject_id=subject_id, data=data,
                                prev_hash=prev_hash)
        if recomputed != stored_hash:
            problems.append(ChainProblem(event_id, sequence, "content does not match its hash (altered)"))
        previous_hash = stored_hash
        expected_sequence = max(expected_sequence, sequence) + 1
        last_sequence, last_hash = sequence, stored_hash
    if head_sequence is not None and (head_sequence, head_hash) != (last_sequence, last_hash):
        problems.append(ChainProblem(None, head_sequence,
                                     f"the chain ends at {last_sequence} {last_hash[:12]} but the head says "
                                     f"{head_sequence} {str(head_hash)[:12]} (the newest events were removed)"))
    return ChainReport(events=count, head_sequence=last_sequence, head_hash=last_hash, problems=tuple(problems))
