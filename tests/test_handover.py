"""The one-slot hand-over between the fetching and the filing thread, with real threads."""

from __future__ import annotations

import threading

from tests.helpers.waiting import wait_until
from wicbox_bridge.run.handover import Handover, Item

WAIT_S = 5.0


def waiting_threads(handover: Handover[str]) -> int:
    """How many threads wait on the handover's condition (CPython keeps them in ``_waiters``)."""
    return len(handover._changed._waiters)  # type: ignore[attr-defined]


def started(target: object) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_items_arrive_in_order_and_end_with_an_end_item() -> None:
    handover: Handover[int] = Handover()
    taken: list[int | None] = []

    def consume() -> None:
        while (item := handover.take()).batch is not None:
            taken.append(item.batch)

    consumer = started(consume)
    for number in range(5):
        assert handover.put(Item(number))
    assert handover.put(Item())
    consumer.join(WAIT_S)

    assert not consumer.is_alive()
    assert taken == [0, 1, 2, 3, 4]


def test_a_second_put_waits_until_the_first_is_taken() -> None:
    handover: Handover[str] = Handover()
    assert handover.put(Item("first"))
    second_put = threading.Event()
    producer = started(lambda: handover.put(Item("second")) and second_put.set())

    assert not second_put.wait(0.2)  # the slot is full
    assert handover.take().batch == "first"
    assert second_put.wait(WAIT_S)
    assert handover.take().batch == "second"
    producer.join(WAIT_S)


def test_wait_taken_returns_once_the_slot_is_empty() -> None:
    handover: Handover[str] = Handover()
    assert handover.wait_taken()  # empty from the start
    handover.put(Item("batch"))
    emptied = threading.Event()
    waiter = started(lambda: handover.wait_taken() and emptied.set())

    assert not emptied.wait(0.2)
    handover.take()
    assert emptied.wait(WAIT_S)
    waiter.join(WAIT_S)


def test_wait_idle_returns_once_the_consumer_is_done_and_waits_for_the_next_item() -> None:
    handover: Handover[str] = Handover()
    handover.put(Item("large batch"))
    idle = threading.Event()
    waiter = started(lambda: handover.wait_idle() and idle.set())
    filing_done, took_first = threading.Event(), threading.Event()
    taken: list[str | None] = []

    def consume() -> None:
        taken.append(handover.take().batch)  # the batch is taken and "filed" until filing_done
        took_first.set()
        filing_done.wait(WAIT_S)
        taken.append(handover.take().batch)

    consumer = started(consume)
    assert took_first.wait(WAIT_S)
    assert handover.wait_taken()  # taken, so a small batch could follow now
    assert not idle.wait(0.2)  # but the consumer is still busy with it
    filing_done.set()
    assert idle.wait(WAIT_S)
    handover.put(Item("next"))
    consumer.join(WAIT_S)
    waiter.join(WAIT_S)
    assert taken == ["large batch", "next"]


def test_close_wakes_a_waiting_producer_and_refuses_further_puts() -> None:
    handover: Handover[str] = Handover()
    handover.put(Item("never taken"))
    answers: list[bool] = []
    producer = started(lambda: answers.append(handover.put(Item("blocked"))))
    wait_until(lambda: waiting_threads(handover) == 1, "the producer waits for the slot")

    handover.close()
    producer.join(WAIT_S)

    assert answers == [False]
    assert not handover.put(Item("late"))
    assert not handover.wait_taken()
    assert handover.closed


def test_close_wakes_a_waiting_consumer_with_an_end_item() -> None:
    handover: Handover[str] = Handover()
    items: list[Item[str]] = []
    consumer = started(lambda: items.append(handover.take()))
    wait_until(lambda: waiting_threads(handover) == 1, "the consumer waits for an item")

    handover.close()
    consumer.join(WAIT_S)

    assert len(items) == 1
    assert items[0].batch is None
    assert items[0].error is None


def test_an_error_travels_to_the_consumer() -> None:
    handover: Handover[str] = Handover()
    failure = ConnectionError("the session was lost")
    handover.put(Item(error=failure))

    assert handover.take().error is failure
