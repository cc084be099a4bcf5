"""A minimal agent for the foundation test: moves records submitted -> validated as they are."""

from pipeline.app import app, topic
from topics.catalog import SUBMITTED, VALIDATED

source = topic(SUBMITTED)
sink = topic(VALIDATED)


@app.agent(source)
async def relay(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)
