"""A minimal agent for the foundation test: moves records submitted -> corrections as they are."""

from pipeline.runtime.app import app, topic
from topics.catalog import CORRECTIONS, SUBMITTED

source = topic(SUBMITTED)
sink = topic(CORRECTIONS)


@app.agent(source)
async def relay(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)
