"""Ported from Temporal's samples: payloads carry enums exactly (``hello_activity_choice``),
dataclasses and Pydantic v2 models, decoded into the annotated parameter and return types of the
workflow and activity functions; plain JSON where nothing is annotated; int/str/float subclasses
that would lose their type are refused before anything starts."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from pgdurable import Durable, errors, payloads
from support.history import events, new_client

QUEUE = "porting-payloads"


class Fruit(enum.IntEnum):
    APPLE = 1
    BANANA = 2
    CHERRY = 3
    ORANGE = 4


class Colour(str, enum.Enum):  # noqa: UP042 - the mixin form ports bring (StrEnum is tested too)
    RED = "red"
    GREEN = "green"


# -- hello_activity_choice, as in Temporal's samples -------------------------------------------
async def order_apples(amount: int) -> str:
    return f"Ordered {amount} Apples..."


async def order_bananas(amount: int) -> str:
    return f"Ordered {amount} Bananas..."


async def order_cherries(amount: int) -> str:
    return f"Ordered {amount} Cherries..."


async def order_oranges(amount: int) -> str:
    return f"Ordered {amount} Oranges..."


@dataclasses.dataclass
class ShoppingListItem:
    fruit: Fruit
    amount: int


@dataclasses.dataclass
class ShoppingList:
    items: list[ShoppingListItem]


async def purchase_fruits(shopping_list: ShoppingList) -> str:
    acts = Durable.workflow.proxy_activities(
        activities=[order_apples, order_bananas, order_cherries, order_oranges],
        start_to_close_timeout="5 seconds")
    ordered: list[str] = []
    for item in shopping_list.items:
        if item.fruit is Fruit.APPLE:
            ordered.append(await acts.order_apples(item.amount))
        elif item.fruit is Fruit.BANANA:
            ordered.append(await acts.order_bananas(item.amount))
        elif item.fruit is Fruit.CHERRY:
            ordered.append(await acts.order_cherries(item.amount))
        elif item.fruit is Fruit.ORANGE:
            ordered.append(await acts.order_oranges(item.amount))
        else:
            raise ValueError(f"Unrecognized fruit: {item.fruit}")
    return "".join(ordered)


# -- typed values through workflow and activity ------------------------------------------------
@dataclasses.dataclass
class Parcel:
    label: str
    colour: Colour
    weight: Decimal
    sent_at: datetime
    tags: list[str] = dataclasses.field(default_factory=list)


class Invoice(pydantic.BaseModel):
    number: int
    colour: Colour
    parcels: list[Parcel]
    note: str | None = None


async def weigh(parcel: Parcel, invoice: Invoice) -> Invoice:
    assert isinstance(parcel, Parcel) and isinstance(parcel.colour, Colour)
    assert isinstance(invoice, Invoice) and isinstance(invoice.parcels[0], Parcel)
    heavier = dataclasses.replace(parcel, weight=parcel.weight + 1, tags=[*parcel.tags, "weighed"])
    return invoice.model_copy(update={"parcels": [heavier], "note": f"{type(parcel).__name__} weighed"})


async def untyped_echo(value):  # noqa: ANN001, ANN201 - no annotation: plain JSON
    return {"seen": value, "type": type(value).__name__}


async def ship(parcel: Parcel, invoice: Invoice, fruit: Fruit) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(activities=[weigh, untyped_echo])
    weighed = await acts.weigh(parcel, invoice)
    echoed = await acts.untyped_echo(parcel)
    return {"types": [type(parcel).__name__, type(invoice).__name__, type(fruit).__name__,
                      type(weighed).__name__, type(weighed.parcels[0]).__name__],
            "weighed": weighed, "echoed": echoed, "fruit": fruit}


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


async def test_hello_activity_choice_gets_its_enum_members_back(connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=purchase_fruits,
                                max_cached_workflows=0)  # every step replays the history
    client = new_client(connection)
    shopping = ShoppingList([ShoppingListItem(Fruit.APPLE, 1), ShoppingListItem(Fruit.BANANA, 2),
                             ShoppingListItem(Fruit.CHERRY, 3), ShoppingListItem(Fruit.ORANGE, 4)])
    handle = await client.workflow.start(args=[shopping], task_queue=QUEUE, workflow_name="purchase_fruits")
    assert await handle.result(timeout=30) == (
        "Ordered 1 Apples...Ordered 2 Bananas...Ordered 3 Cherries...Ordered 4 Oranges...")
    started = (await events(handle, "workflow_started"))
    assert started  # the history stays JSON: the enum is a tagged value naming its type
    scheduled = (await events(handle, "activity_scheduled"))[0]
    assert scheduled["details"]["args"] == [1]


async def test_dataclasses_pydantic_models_and_enums_are_decoded_into_the_annotated_types(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=ship)
    client = new_client(connection)
    sent = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    parcel = Parcel("p-1", Colour.RED, Decimal("2.50"), sent, ["fragile"])
    invoice = Invoice(number=7, colour=Colour.GREEN, parcels=[parcel])
    handle = await client.workflow.start(args=[parcel, invoice, Fruit.CHERRY], task_queue=QUEUE,
                                         workflow_name="ship")
    result = await handle.result(timeout=30)
    assert result["types"] == ["Parcel", "Invoice", "Fruit", "Invoice", "Parcel"]
    # The client has no annotation: a dataclass or model comes back as a plain dict; enums exactly.
    assert result["fruit"] is Fruit.CHERRY
    weighed = result["weighed"]
    assert weighed["note"] == "Parcel weighed" and weighed["colour"] is Colour.GREEN
    assert weighed["parcels"] == [{"label": "p-1", "colour": Colour.RED, "weight": Decimal("3.50"),
                                   "sent_at": sent, "tags": ["fragile", "weighed"]}]
    assert Invoice.model_validate(weighed).parcels[0].weight == Decimal("3.50")
    assert result["echoed"]["type"] == "dict"  # unannotated activity parameter: plain JSON
    assert result["echoed"]["seen"]["colour"] is Colour.RED


def test_enum_members_round_trip_exactly_and_other_subclasses_are_refused_naming_the_type() -> None:
    class Flavour(enum.StrEnum):
        SWEET = "sweet"

    class Tag(str):
        pass

    class Score(float):
        pass

    stored = payloads.dumps({"fruits": [Fruit.APPLE, Fruit.ORANGE], "colour": Colour.RED, "n": 1, "ok": True})
    back = payloads.loads(stored)
    assert back == {"fruits": [Fruit.APPLE, Fruit.ORANGE], "colour": Colour.RED, "n": 1, "ok": True}
    assert [type(f) for f in back["fruits"]] == [Fruit, Fruit] and type(back["ok"]) is bool
    assert payloads.loads(payloads.dumps(Fruit.APPLE), Fruit) is Fruit.APPLE
    # A class defined where the decoder cannot see it: decoded through the annotation only.
    assert payloads.loads(payloads.dumps(Flavour.SWEET), Flavour) is Flavour.SWEET
    with pytest.raises(errors.PayloadError, match="Flavour"):
        payloads.loads(payloads.dumps(Flavour.SWEET))
    with pytest.raises(TypeError, match="cannot be decoded into"):
        payloads.loads(payloads.dumps(Colour.RED), Fruit)
    for bad, named in [(Tag("x"), "Tag"), (Score(1.5), "Score"), ({"k": [Tag("y")]}, "Tag"),
                       ({Colour.RED: 1}, "Colour")]:
        with pytest.raises(TypeError, match=named):
            payloads.dumps(bad)


async def test_an_enum_subclass_argument_of_the_wrong_kind_is_refused_before_anything_starts(
        connection: Durable.Connection) -> None:
    class Sku(str):
        pass

    client = new_client(connection)
    with pytest.raises(TypeError, match="Sku"):
        await client.workflow.start(args=[Sku("a-1")], task_queue=QUEUE, workflow_name="ship",
                                    workflow_id="never")
    assert await client.workflow.list() == []


async def test_a_result_holding_an_enum_the_client_cannot_import_is_never_silently_changed(
        connection: Durable.Connection) -> None:
    class Flavour(enum.StrEnum):  # defined where no other process could import it
        SWEET = "sweet"

    async def returns_a_local_enum() -> Flavour:
        return Flavour.SWEET

    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=returns_a_local_enum)
    client = new_client(connection)
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="returns_a_local_enum")
    with pytest.raises(errors.PayloadError, match="Flavour"):
        await handle.result(timeout=20)
    state = await handle.state()  # what the CLI shows: the tagged JSON, type named
    assert state["status"] == "completed"
    assert state["result"]["v"] == "sweet" and state["result"]["t"].endswith("Flavour")


def test_a_union_with_a_plain_type_first_still_decodes_a_dataclass_or_model_stored_in_it() -> None:
    """``int | Parcel`` (or ``Optional[Union[str, Invoice]]``) names a plain type first: a stored
    object must still become the dataclass or model, never stay a dict because ``int`` came first;
    a plain value still takes the plain type."""
    parcel = Parcel("p", Colour.RED, Decimal("1.5"), datetime(2026, 1, 1, tzinfo=UTC), ["x"])
    invoice = Invoice(number=7, colour=Colour.RED, parcels=[parcel])
    for annotation, value in [(int | Parcel, parcel), (str | Invoice | None, invoice),
                              (list[int | Parcel], [3, parcel]), (dict[str, str | Invoice], {"i": invoice})]:
        back = payloads.loads(payloads.dumps(value), annotation)
        assert back == value, (annotation, back)
    assert payloads.loads(payloads.dumps(3), int | Parcel) == 3
    assert payloads.loads(payloads.dumps("red"), str | Colour) == "red"
    assert payloads.loads(payloads.dumps(None), str | Invoice | None) is None
