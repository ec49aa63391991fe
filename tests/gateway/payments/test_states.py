"""The pure state machine: table properties and hypothesis walks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.payments.states import (
    BATCH_TRANSITIONS,
    ITEM_TRANSITIONS,
    BatchEvent,
    BatchState,
    InvalidTransitionError,
    ItemEvent,
    ItemState,
    batch_next,
    item_next,
    item_sources,
)

# Events that may legitimately move an item out of a final state: each is an explicit,
# recorded follow-up (bounce after success, return for correction, re-issue, refund).
FOLLOW_UPS = {ItemEvent.BOUNCE, ItemEvent.RETURN, ItemEvent.REISSUE, ItemEvent.REFUND}


def test_happy_path() -> None:
    s = ItemState.ACCEPTED
    for e in (ItemEvent.PLAN, ItemEvent.DELIVER, ItemEvent.RESULT_PAID):
        s = item_next(s, e)
    assert s == ItemState.PAID
    assert s.is_final()


def test_bank_results_never_move_a_final_item() -> None:
    for state in ItemState:
        if state.is_final():
            for event in (ItemEvent.RESULT_PAID, ItemEvent.RESULT_FAILED, ItemEvent.DELIVER):
                with pytest.raises(InvalidTransitionError):
                    item_next(state, event)


def test_final_states_leave_only_through_follow_up_events() -> None:
    for (state, event), _target in ITEM_TRANSITIONS.items():
        if state.is_final():
            assert event in FOLLOW_UPS, (state, event)


def test_reissued_and_cancelled_are_terminal() -> None:
    for state in (ItemState.REISSUED, ItemState.CANCELLED):
        assert not [e for (s, e) in ITEM_TRANSITIONS if s == state]


def test_paid_can_only_bounce() -> None:
    assert [e for (s, e) in ITEM_TRANSITIONS if s == ItemState.PAID] == [ItemEvent.BOUNCE]


def test_unknown_outcome_never_goes_back_to_sending_without_inquiry() -> None:
    # from UNKNOWN the only way back to QUEUED (a resend) is an inquiry that proved absence
    assert item_next(ItemState.UNKNOWN, ItemEvent.CONFIRM_UNSENT) == ItemState.QUEUED
    assert [
        e for (s, e) in ITEM_TRANSITIONS if s == ItemState.UNKNOWN and e == ItemEvent.PLAN
    ] == []


def test_item_sources() -> None:
    assert set(item_sources(ItemEvent.RESULT_PAID)) == {
        ItemState.QUEUED,
        ItemState.SENT,
        ItemState.UNKNOWN,
        ItemState.OPERATOR_CASE,
    }


def test_batch_path_and_finals() -> None:
    s = BatchState.RECEIVED
    for e in (BatchEvent.ACCEPT, BatchEvent.PLAN, BatchEvent.ALL_DELIVERED, BatchEvent.ALL_FINAL):
        s = batch_next(s, e)
    assert s == BatchState.COMPLETED
    for state, _e in BATCH_TRANSITIONS:
        assert not state.is_final()
    with pytest.raises(InvalidTransitionError):
        batch_next(BatchState.REJECTED, BatchEvent.ACCEPT)


def test_every_state_has_a_chinese_label() -> None:
    assert all(s.label_zh for s in ItemState)
    assert all(s.label_zh for s in BatchState)


@given(st.lists(st.sampled_from(list(ItemEvent)), max_size=30))
def test_random_walks_respect_the_table(events: list[ItemEvent]) -> None:
    state = ItemState.ACCEPTED
    for event in events:
        try:
            new = item_next(state, event)
        except InvalidTransitionError:
            assert (state, event) not in ITEM_TRANSITIONS
            continue
        assert ITEM_TRANSITIONS[(state, event)] == new
        if state.is_final():
            assert event in FOLLOW_UPS
        state = new


def test_completed_batch_is_reconciled_then_final() -> None:
    """对账: a completed batch becomes reconciled (a recorded event); nothing follows it."""
    assert batch_next(BatchState.COMPLETED, BatchEvent.RECONCILE) == BatchState.RECONCILED
    assert BatchState.RECONCILED.is_final()
    assert not BatchState.COMPLETED.is_final()
    assert BatchState.COMPLETED.is_settled() and BatchState.RECONCILED.is_settled()
    assert not [e for (s, e) in BATCH_TRANSITIONS if s == BatchState.RECONCILED]
    assert BatchState.RECONCILED.label_zh == "已对账"
    # only a completed batch (every item final for the bank) can be reconciled
    for state in BatchState:
        if state != BatchState.COMPLETED:
            with pytest.raises(InvalidTransitionError):
                batch_next(state, BatchEvent.RECONCILE)
